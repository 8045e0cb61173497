"""One API process of several: serves the application named by ``--call`` (a factory, as
waitress's own ``--call``) with waitress on a listening socket inherited from its parent
(``--fd``), so that N processes share one port without a load balancer.

``clinic api --processes N`` and ``clinic up`` bind the socket once, in the supervising parent,
and run this N times. The kernel hands each new connection to whichever process accepts it
first. Each process has its own state (rate limits, caches of keys, open event streams)."""

from __future__ import annotations

import argparse
import socket
import sys
from pkgutil import resolve_name

import waitress

from clinic.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic-api-process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket's file descriptor")
    parser.add_argument("--call", default="api.app:get_app", help="module:factory returning the WSGI app")
    args = parser.parse_args(argv)
    from clinic.ops.cli import waitress_options  # the same adjustments as the single-process command

    settings = Settings.from_env()
    listening = socket.socket(fileno=args.fd)
    app = resolve_name(args.call)()
    waitress.serve(app, sockets=[listening], **waitress_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
