"""The API process: waitress serving ``api.app:get_app`` so that slow clients cannot starve it, and
answering what waitress refuses by itself as problem+json. ``python -m api.serve --host H --port P``,
or ``--fd FD`` to serve a listening socket inherited from a parent that runs several API processes
on one port (``clinic api --processes N``; the kernel hands each connection to one of them).

Waitress reads a request's headers and body in its event loop, not in its worker threads, and
hands a request to a thread only once it has arrived whole. So a client that trickles its headers
holds a connection, never a thread; what it can exhaust is waitress's connection limit (100 by
default, counting idle and half-received connections), and waitress closes only connections that
send nothing at all. Here the limit is raised, and each request must arrive in time: its headers
within ``HEADER_DEADLINE`` of its first byte, its body at ``MIN_BODY_RATE`` on average after
``BODY_GRACE``. A late request is answered 408 and its connection closed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from api.errors import PROBLEM_JSON, phrase, problem_body
from clinic.config import MAX_REQUEST_BODY_BYTES, Settings

logger = logging.getLogger("api.serve")

#: Seconds a connection may stay silent between requests (idle keep-alive, half-open) before it closes.
IDLE_TIMEOUT = 10
#: Seconds from a request's first byte to the end of its headers.
HEADER_DEADLINE = 5
#: Bytes a second a body must average once ``BODY_GRACE`` seconds have passed since its headers.
MIN_BODY_RATE = 1024
BODY_GRACE = 5
#: Connections held at once; each costs a file descriptor and a few KiB, never a thread.
CONNECTION_LIMIT = 1000
MAX_REQUEST_HEADER_BYTES = 16 * 1024
#: Waitress's own hard limit, well above the app's, so a body over the app's limit that states its
#: Content-Length gets the app's 413; only a chunked body past this is cut by waitress itself.
HARD_BODY_LIMIT = 16 * MAX_REQUEST_BODY_BYTES

_DETAILS = {
    400: "the request is not valid HTTP/1.1",
    413: f"the body must be at most {MAX_REQUEST_BODY_BYTES} bytes",
    431: f"the request line and headers must be at most {MAX_REQUEST_HEADER_BYTES} bytes",
    500: "the request could not be completed",
    501: "the request uses a transfer coding this server does not support",
}


class ProblemErrorTask(ErrorTask):
    """What waitress refuses before the app (malformed HTTP, headers too large, a chunked body past
    the hard limit) is answered as problem+json, and logged by status alone: waitress's own message
    quotes the request, which may hold a patient's name."""

    def execute(self) -> None:
        code = self.request.error.code
        logger.info("Refused a request from %s before the app: %d %s", self.channel.addr[0], code, phrase(code))
        body = problem_body(code, _DETAILS.get(code, phrase(code)))
        self.status = f"{code} {phrase(code)}"
        self.response_headers.append(("Content-Type", PROBLEM_JSON))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class DeadlineChannel(HTTPChannel):
    """A waitress connection whose request must arrive in time (see the module's docstring)."""

    error_task_class = ProblemErrorTask
    _started: float | None = None  # the first byte of the request being received
    _headers_done: float | None = None

    def received(self, data: bytes) -> bool:
        receiving = self.request
        result = super().received(data)
        request = self.request
        if request is None:
            self._started = self._headers_done = None
        else:
            now = time.monotonic()
            if request is not receiving:
                self._started, self._headers_done = now, None
            if request.headers_finished and self._headers_done is None:
                self._headers_done = now
        return result

    def readable(self) -> bool:
        # Asked of every connection on each turn of the event loop (at least once a second).
        if self.request is not None and self._started is not None and not self.requests:
            if not (self.will_close or self.close_when_flushed) and self._late(time.monotonic()):
                self._time_out()
        return super().readable()

    def _late(self, now: float) -> bool:
        if self._headers_done is None:
            return now - self._started > HEADER_DEADLINE
        allowed = BODY_GRACE + self.request.body_bytes_received / MIN_BODY_RATE
        return now - self._headers_done > allowed

    def _time_out(self) -> None:
        logger.info("Closed a connection from %s: its request did not arrive in time", self.addr[0])
        body = problem_body(408, "the request did not arrive in time")
        head = (
            f"HTTP/1.1 408 {phrase(408)}\r\nContent-Type: {PROBLEM_JSON}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        data = head.encode("ascii") + body
        with self.requests_lock:
            self.request.close()
            self.request = None
            self._started = self._headers_done = None
            with self.outbuf_lock:
                self.outbufs[-1].append(data)
                self.current_outbuf_count += len(data)
                self.total_outbufs_len += len(data)
            self.close_when_flushed = True


class QueueDepthLog:
    """Waitress's ``queue_logger``, summarised. Waitress warns "Task queue depth is N" for every
    request that finds all its threads busy: at saturation that is a line per request, which
    buries every other line. This passes the first warning on at once, then at most one per
    ``interval`` seconds, each saying the deepest queue and how many warnings it stands for since
    the line before.

    Waitress calls ``warning`` under its dispatcher's lock, so calls never overlap."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger or logging.getLogger("waitress.queue")
        self.interval, self.clock = interval, clock
        self.due = float("-inf")
        self.deepest = self.held = 0

    def warning(self, message: str, depth: int) -> None:
        self.deepest, self.held = max(self.deepest, depth), self.held + 1
        now = self.clock()
        if now < self.due:
            return
        self.logger.warning(
            "Task queue depth is %d: every thread was busy for %d request(s) since the last such line",
            self.deepest,
            self.held,
        )
        self.due, self.deepest, self.held = now + self.interval, 0, 0


def serve(app, *, threads: int, host: str = "127.0.0.1", port: int = 8000, fd: int | None = None) -> None:
    """Serve ``app`` until interrupted, on ``host:port`` or on the inherited listening socket ``fd``."""
    _allow_open_files(CONNECTION_LIMIT + 256)
    where = {"host": host, "port": port} if fd is None else {"sockets": [socket.socket(fileno=fd)]}
    server = create_server(
        app,
        **where,
        threads=threads,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=IDLE_TIMEOUT,
        cleanup_interval=1,
        max_request_header_size=MAX_REQUEST_HEADER_BYTES,
        max_request_body_size=HARD_BODY_LIMIT,
        asyncore_use_poll=True,  # select() cannot watch descriptors above 1024
    )
    server.channel_class = DeadlineChannel  # the server builds each connection from this attribute
    server.task_dispatcher.queue_logger = QueueDepthLog()  # a class attribute waitress reads per warning
    server.print_listen("Serving on http://{}:{}")
    server.run()


def _allow_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.serve", description="Serve the clinic's API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int, help="serve this inherited listening socket instead of binding")
    parser.add_argument("--app", default="api.app:get_app", help="MODULE:FUNCTION that returns the WSGI app")
    args = parser.parse_args(argv)
    module, _, function = args.app.partition(":")
    app = getattr(importlib.import_module(module), function)()
    # SIGTERM ends the process through SystemExit, so its exit handlers run: the API's relay sends
    # what it still holds before the process goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(app, host=args.host, port=args.port, fd=args.fd, threads=Settings.from_env().api_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
