"""``clinic``: run the API and the workers, subscribe to outcomes, manage the schema.

The pieces run as their own programs (waitress for the API, Dramatiq's CLI for the workers),
started here by module name, so this package imports neither ``api`` nor ``actors``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from clinic import store
from clinic.config import MAX_REQUEST_BODY_BYTES, STAGES, Settings
from clinic.errors import ConfigError

logger = logging.getLogger("clinic")

OUTCOMES = ("confirmed", "rejected")


def api_argv(settings: Settings, host: str, port: int) -> list[str]:
    """The waitress command that serves the API (compose and the README run the same)."""
    return [
        sys.executable,
        "-m",
        "waitress",
        f"--listen={host}:{port}",
        f"--threads={settings.api_threads}",
        f"--max-request-body-size={MAX_REQUEST_BODY_BYTES}",
        "--channel-timeout=30",
        "--call",
        "api.app:get_app",
    ]


def worker_argv(settings: Settings, stages: Sequence[str]) -> list[str]:
    """The Dramatiq command that runs the actors of the given stages (one process group)."""
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "actors",
        "--processes",
        str(settings.worker_processes),
        "--threads",
        str(settings.worker_threads),
        "--worker-shutdown-timeout",
        "30000",
        "--queues",
        *(settings.queue(stage) for stage in stages),
    ]


def sweeper_argv(*, once: bool = False) -> list[str]:
    """The sweeper re-sends stale bookings, so it runs on the actors' side of the code."""
    return [sys.executable, "-m", "actors.sweeper", *(["--once"] if once else [])]


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.supervisor import Supervisor

    store.connect(settings.database_url)
    store.create_schema()
    children = {"api": api_argv(settings, args.host, args.port)}
    children.update({f"worker-{stage}": worker_argv(settings, [stage]) for stage in STAGES})
    children["sweeper"] = sweeper_argv()
    logger.info("API on http://%s:%d, workers on %s", args.host, args.port, ", ".join(settings.queues))
    return Supervisor(children).run()


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    argv = api_argv(settings, args.host, args.port)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    argv = worker_argv(settings, args.stages)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_init_db(settings: Settings, args: argparse.Namespace) -> int:
    store.connect(settings.database_url)
    store.create_schema()
    print(f"schema ready ({settings.database_url.split('://', 1)[0]})")
    return 0


def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    argv = sweeper_argv(once=args.once)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.notifications import subscribe

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    keys = args.statuses or list(OUTCOMES)
    try:
        ready = lambda: print(f"listening on {settings.exchange} for {', '.join(keys)}", file=sys.stderr, flush=True)
        for properties, body in subscribe(
            settings.broker_url, settings.exchange, keys, stop=lambda: bool(stopping), ready=ready
        ):
            print(json.dumps({"message_id": properties.message_id, **body}, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _stage(value: str) -> str:
    stage = value.rsplit(".", 1)[-1]
    if stage not in STAGES:
        raise argparse.ArgumentTypeError(f"unknown queue {value!r}: choose from {', '.join(STAGES)}")
    return stage


def _status(value: str) -> str:
    if value not in OUTCOMES:
        raise argparse.ArgumentTypeError(f"unknown status {value!r}: choose from {', '.join(OUTCOMES)}")
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a number, not {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError("--port must be between 1 and 65535")
    return port


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def served(command: argparse.ArgumentParser) -> None:
        command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        command.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")

    up = commands.add_parser("up", help="run the API, one worker group per queue and the sweeper, supervised")
    served(up)
    up.set_defaults(handler=cmd_up)

    api = commands.add_parser("api", help="run only the API (waitress)")
    served(api)
    api.set_defaults(handler=cmd_api)

    worker = commands.add_parser("worker", help="run only the workers of the given queues (Dramatiq)")
    worker.add_argument(
        "stages",
        nargs="+",
        type=_stage,
        metavar="QUEUE",
        help=f"one or more of {', '.join(STAGES)} (or the full queue name)",
    )
    worker.set_defaults(handler=cmd_worker)

    sub = commands.add_parser("subscribe", help="print each notification as one JSON line until stopped")
    sub.add_argument(
        "statuses",
        nargs="*",
        type=_status,
        metavar="STATUS",
        help=f"routing keys to bind (default: {' '.join(OUTCOMES)})",
    )
    sub.set_defaults(handler=cmd_subscribe)

    init = commands.add_parser("init-db", help="create or upgrade the schema (safe to run twice)")
    init.set_defaults(handler=cmd_init_db)

    sweep = commands.add_parser("sweep", help="re-send bookings pending longer than CLINIC_SWEEP_AFTER")
    sweep.add_argument("--once", action="store_true", help="sweep once and exit instead of every few seconds")
    sweep.set_defaults(handler=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    args = make_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"clinic: {error}", file=sys.stderr)
        return 2
    return args.handler(settings, args)


if __name__ == "__main__":
    sys.exit(main())
