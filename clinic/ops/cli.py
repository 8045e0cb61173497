"""``clinic``: run the API and the workers, subscribe to outcomes, manage the schema, keys and
dead letters.

The pieces run as their own programs (waitress for the API, Dramatiq's CLI for the workers),
started here by module name, so this package imports neither ``api`` nor ``actors``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dramatiq.common import xq_name

from clinic import keys, logs, secretbox, store
from clinic.bookings import FINAL_STATUSES
from clinic.config import PROCESS, STAGES, Settings
from clinic.errors import ApiKeyNotFound, BrokerUnavailable, ConfigError, DeadLetterNotFound, InvalidField

logger = logging.getLogger("clinic")

#: What ``clinic subscribe`` binds when no status is named: every outcome.
OUTCOMES = FINAL_STATUSES


#: The module:factory that returns the API's WSGI application.
API_FACTORY = "api.app:get_app"


def api_argv(settings: Settings, host: str, port: int) -> list[str]:
    """The command that serves the API in one process (compose and the README run the same):
    waitress with the deadlines and limits of ``api.serve``, which slow clients cannot exhaust."""
    return [sys.executable, "-m", "api.serve", "--host", host, "--port", str(port), "--app", API_FACTORY]


def api_process_argv(fd: int) -> list[str]:
    """One of several API processes: the same server, on the listening socket ``fd`` its parent bound."""
    return [sys.executable, "-m", "api.serve", "--fd", str(fd), "--app", API_FACTORY]


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's port, bound once by the supervising parent and inherited by each API process."""
    sock = socket.create_server((host, port), backlog=1024)
    sock.set_inheritable(True)
    return sock


def api_children(
    settings: Settings, host: str, port: int, processes: int
) -> tuple[dict[str, list[str]], list[socket.socket]]:
    """The API's supervised children and the sockets they inherit (keep them open while the
    children run): one server that binds its own port, or ``processes`` of them sharing a
    socket bound here."""
    if processes == 1:
        return {"api": api_argv(settings, host, port)}, []
    sock = listening_socket(host, port)
    return {f"api-{n}": api_process_argv(sock.fileno()) for n in range(1, processes + 1)}, [sock]


#: Milliseconds a Dramatiq consumer waits before reconnecting after its connection broke (its
#: default, 3000, stops the workers on a lost node 3 s longer than the cluster needs to fail over).
CONSUMER_RESTART_DELAY_MS = "500"


def worker_environment() -> None:
    """Settings Dramatiq reads from the environment, given to the worker processes started from here."""
    os.environ.setdefault("dramatiq_restart_delay", CONSUMER_RESTART_DELAY_MS)


def metrics_directory(settings: Settings, name: str) -> str:
    """An empty directory for the prometheus_client files of one group of processes that share a
    metrics port (multiprocess mode); emptied at each start, so no figure of an earlier run stays."""
    path = Path(tempfile.gettempdir()) / "clinic-metrics" / settings.namespace / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


def worker_metrics_environment(settings: Settings, stages: Sequence[str]) -> dict[str, str]:
    """What Dramatiq's Prometheus middleware reads for one worker group: its port (the first
    stage's place in STAGES after CLINIC_WORKER_METRICS_PORT), address and files; none when off."""
    if settings.worker_metrics_port is None:
        return {}
    return {
        "dramatiq_prom_port": str(settings.worker_metrics_port + STAGES.index(stages[0])),
        "dramatiq_prom_host": settings.worker_metrics_host,
        "dramatiq_prom_db": metrics_directory(settings, "worker-" + "-".join(stages)),
    }


def api_metrics_environment(settings: Settings, processes: int) -> dict[str, str]:
    """Several API processes on one port count requests in one directory, which any of them reads
    back for a scrape (prometheus_client's multiprocess mode); one process counts in memory."""
    if processes == 1:
        return {}
    return {"PROMETHEUS_MULTIPROC_DIR": metrics_directory(settings, "api")}


def worker_argv(settings: Settings, stages: Sequence[str]) -> list[str]:
    """The Dramatiq command that runs the actors of the given stages (one process group)."""
    return [
        sys.executable,
        "-m",
        "actors.dramatiq_cli",
        "actors.worker:start",
        "--processes",
        str(settings.worker_processes),
        "--threads",
        str(settings.worker_threads),
        "--worker-shutdown-timeout",
        "30000",
        "--queues",
        *(settings.queue(stage) for stage in stages),
    ]


def relay_argv(*, once: bool = False) -> list[str]:
    """The relay hands every committed booking event to the notifier and the webhooks."""
    return [sys.executable, "-m", "clinic.ops.relay", *(["--once"] if once else [])]


def sweeper_argv(*, once: bool = False) -> list[str]:
    """The sweeper re-sends stale bookings, so it runs on the actors' side of the code."""
    return [sys.executable, "-m", "clinic.ops.sweeper", *(["--once"] if once else [])]


def open_store(settings: Settings) -> None:
    """Bind the models to the configured database and make sure its schema is current."""
    store.connect(settings.database_url)
    store.create_schema()


def check_queues(settings: Settings, stages: Sequence[str]) -> bool:
    """Declare the stages' queues as the settings say; False (and why, on stderr) when the
    namespace was declared with the other CLINIC_QUEUE_TYPE. A broker that does not answer yet is
    no reason not to start: the workers and the API connect when it comes."""
    from clinic.broker import BROKER_ERRORS
    from clinic.broker.dispatch import QueueTypeMismatch, rabbitmq_broker

    logging.getLogger("pika").setLevel(logging.CRITICAL)  # its refusal is told below, in plain words
    try:
        rabbitmq_broker(settings).verify_queues([settings.queue(stage) for stage in stages])
    except QueueTypeMismatch as error:
        print(f"clinic: {error}", file=sys.stderr)
        return False
    except BROKER_ERRORS as error:
        logger.warning("could not check the queues' type: RabbitMQ does not answer (%s)", type(error).__name__)
    return True


def _secret_key_file(settings: Settings) -> None:
    """Generate the key that seals webhook secrets, when CLINIC_SECRET_KEY is unset and none exists."""
    made = secretbox.ensure_secret_key(settings)
    if made is not None:
        logger.info(
            "generated the secret key of the webhook secrets in %s (mode 0600); keep it with the database", made
        )


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.ops.supervisor import Supervisor

    open_store(settings)
    if not check_queues(settings, STAGES):
        return 2
    _secret_key_file(settings)
    first_client_key()
    processes = args.processes or settings.api_processes
    children, sockets = api_children(settings, args.host, args.port, processes)
    api_env = api_metrics_environment(settings, processes)
    child_env = {name: api_env for name in children}
    children.update({f"worker-{stage}": worker_argv(settings, [stage]) for stage in STAGES})
    child_env.update({f"worker-{stage}": worker_metrics_environment(settings, [stage]) for stage in STAGES})
    children["relay"] = relay_argv()
    children["sweeper"] = sweeper_argv()
    worker_environment()
    logger.info(
        "API on http://%s:%d (%d process(es)), workers on %s",
        args.host,
        args.port,
        processes,
        ", ".join(settings.queues),
    )
    return Supervisor(children, pass_fds=[sock.fileno() for sock in sockets], child_env=child_env).run()


def first_client_key() -> None:
    """On a fresh install, make the client key ``local`` and show it once, so the API can be tried at once."""
    with store.database.connection_context():
        new = keys.create_local_key()
    if new is not None:
        print(f"No client key existed: created client key {new.key.id} ({new.key.name}). Send it as", file=sys.stderr)
        print("'Authorization: Bearer <key>'; it is shown only this once:", file=sys.stderr, flush=True)
        print(new.token, flush=True)


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.ops.supervisor import Supervisor

    if not check_queues(settings, [PROCESS]):
        return 2
    processes = args.processes or settings.api_processes
    if processes > 1:
        children, sockets = api_children(settings, args.host, args.port, processes)
        api_env = api_metrics_environment(settings, processes)
        child_env = {name: api_env for name in children}
        return Supervisor(children, pass_fds=[sock.fileno() for sock in sockets], child_env=child_env).run()
    argv = api_argv(settings, args.host, args.port)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if not check_queues(settings, args.stages):
        return 2
    argv = worker_argv(settings, args.stages)
    worker_environment()
    os.environ.update(worker_metrics_environment(settings, args.stages))
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_init_db(settings: Settings, args: argparse.Namespace) -> int:
    open_store(settings)
    _secret_key_file(settings)
    print(f"schema ready ({settings.database_url.split('://', 1)[0]})")
    return 0


def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    argv = sweeper_argv(once=args.once)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    argv = relay_argv(once=args.once)
    os.execv(argv[0], argv)
    return 1  # not reached


def cmd_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.broker.notifications import subscribe

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    bound = args.statuses or list(OUTCOMES)
    try:
        ready = lambda: print(f"listening on {settings.exchange} for {', '.join(bound)}", file=sys.stderr, flush=True)
        for properties, body in subscribe(
            settings.broker_url, settings.exchange, bound, queue=args.queue, stop=lambda: bool(stopping), ready=ready
        ):
            print(json.dumps({"message_id": properties.message_id, **body}, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    open_store(settings)
    try:
        with store.database.connection_context():
            new = keys.create_key(args.name, args.scope)
    except InvalidField as error:
        print(f"clinic keys create: --{error.field} {error.problem}", file=sys.stderr)
        return 2
    print(f"created {new.key.scope} key {new.key.id} ({new.key.name}); it is shown only this once:", file=sys.stderr)
    print(new.token, flush=True)
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    open_store(settings)
    with store.database.connection_context():
        rows = [
            {
                "id": key.id,
                "name": key.name,
                "scope": key.scope,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in keys.list_keys()
        ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{'ID':<12}  {'SCOPE':<6}  {'CREATED':<25}  {'REVOKED':<25}  NAME")
    for row in rows:
        revoked = row["revoked_at"] or "-"
        print(f"{row['id']:<12}  {row['scope']:<6}  {row['created_at']:<25}  {revoked:<25}  {row['name']}")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    open_store(settings)
    try:
        with store.database.connection_context():
            key = keys.revoke(args.id)
    except ApiKeyNotFound:
        print(f"clinic keys revoke: no key has the id {args.id!r}", file=sys.stderr)
        return 1
    print(f"revoked {key.scope} key {key.id} ({key.name}) at {key.revoked_at.isoformat()}")
    return 0


def cmd_dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.broker.deadletters import RETENTION_DAYS, DeadLetters

    letters = DeadLetters(settings).list(args.queue)
    if args.json:
        print(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return 0
    print(f"{'QUEUE':<24}  {'MESSAGE ID':<36}  {'ACTOR':<26}  {'BOOKING ID':<36}  RETRIES  ERROR")
    for letter in letters:
        print(
            f"{letter.queue:<24}  {letter.message_id:<36}  {letter.actor:<26}  {letter.booking_id or '-':<36}  "
            f"{letter.retries:<7}  {letter.error}"
        )
    print(f"{len(letters)} dead letter(s); Dramatiq keeps each for {RETENTION_DAYS:g} days", file=sys.stderr)
    return 0


def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.broker.deadletters import DeadLetters

    try:
        replayed = DeadLetters(settings).replay(stage=args.queue, message_id=args.id)
    except DeadLetterNotFound:
        print(f"clinic dlq replay: no dead letter has the message id {args.id!r}", file=sys.stderr)
        return 1
    for letter in replayed:
        print(f"replayed {letter.message_id} ({letter.actor}) to {letter.queue.removesuffix('.XQ')}")
    print(f"{len(replayed)} message(s) replayed", file=sys.stderr)
    return 0


def cmd_dlq_purge(settings: Settings, args: argparse.Namespace) -> int:
    from clinic.broker.deadletters import DeadLetters

    where = xq_name(settings.queue(args.queue)) if args.queue else xq_name(f"every {settings.namespace}.*")
    if not args.yes:
        print(f"This deletes every dead letter in {where} for good. Type yes to go on: ", end="", file=sys.stderr)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip()
        if answer != "yes":
            print("nothing purged", file=sys.stderr)
            return 1
    print(f"purged {DeadLetters(settings).purge(args.queue)} dead letter(s) from {where}")
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


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--processes must be a number, not {value!r}") from None
    if not 0 < count <= 64:
        raise argparse.ArgumentTypeError("--processes must be between 1 and 64")
    return count


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def served(command: argparse.ArgumentParser) -> None:
        command.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        command.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
        command.add_argument(
            "--processes",
            type=_count,
            default=None,
            metavar="N",
            help="API processes sharing the port (default CLINIC_API_PROCESSES, 1)",
        )

    up = commands.add_parser(
        "up", help="run the API, one worker group per queue, the relay and the sweeper, supervised"
    )
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

    relay = commands.add_parser("relay", help="hand every booking event to the notifier and the webhooks")
    relay.add_argument("--once", action="store_true", help="relay what is waiting once and exit")
    relay.set_defaults(handler=cmd_relay)

    sub = commands.add_parser("subscribe", help="print each notification as one JSON line until stopped")
    sub.add_argument(
        "statuses",
        nargs="*",
        type=_status,
        metavar="STATUS",
        help=f"routing keys to bind (default: {' '.join(OUTCOMES)})",
    )
    sub.add_argument(
        "--queue",
        metavar="NAME",
        help="bind a durable quorum queue of this name (kept while away and across a node's loss) "
        "instead of a queue that vanishes with this subscriber",
    )
    sub.set_defaults(handler=cmd_subscribe)

    init = commands.add_parser("init-db", help="create or upgrade the schema (safe to run twice)")
    init.set_defaults(handler=cmd_init_db)

    sweep = commands.add_parser("sweep", help="re-send bookings pending longer than CLINIC_SWEEP_AFTER")
    sweep.add_argument("--once", action="store_true", help="sweep once and exit instead of every few seconds")
    sweep.set_defaults(handler=cmd_sweep)

    key_parser = commands.add_parser("keys", help="create, list and revoke bearer API keys")
    keys_commands = key_parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="create a key and print it (the only time it is shown)")
    create.add_argument(
        "--scope",
        required=True,
        choices=keys.SCOPES,
        help="client: its own bookings; staff: every booking (the front desk); admin: staff and /admin",
    )
    create.add_argument("--name", required=True, help="who or what the key is for (shown in 'keys list')")
    create.set_defaults(handler=cmd_keys_create)
    listing = keys_commands.add_parser("list", help="every key: id, scope, name, when created and revoked")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=cmd_keys_list)
    revoke = keys_commands.add_parser(
        "revoke",
        help="revoke a key for good (the API refuses it within CLINIC_KEY_CACHE_SECONDS)",
    )
    revoke.add_argument("id", metavar="ID", help="the key's id, as 'keys list' shows it")
    revoke.set_defaults(handler=cmd_keys_revoke)

    dlq = commands.add_parser("dlq", help="list, replay or purge the dead letters (kept by Dramatiq for 7 days)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    def queue_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--queue", type=_stage, metavar="QUEUE", help=f"only this stage: one of {', '.join(STAGES)} (default: all)"
        )

    dlq_list = dlq_commands.add_parser("list", help="show the dead letters without removing them")
    queue_option(dlq_list)
    dlq_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dlq_list.set_defaults(handler=cmd_dlq_list)
    replay = dlq_commands.add_parser("replay", help="send dead letters back to their queue, retry count reset")
    queue_option(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", metavar="MESSAGE_ID", help="the message id, as 'dlq list' shows it")
    which.add_argument("--all", action="store_true", help="every dead letter (of --queue, or of all queues)")
    replay.set_defaults(handler=cmd_dlq_replay)
    purge = dlq_commands.add_parser("purge", help="delete dead letters for good (asks first)")
    queue_option(purge)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_dlq_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"clinic: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format)
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        return args.handler(settings, args)
    except BrokerUnavailable as error:
        print(f"clinic: RabbitMQ at the CLINIC_BROKER_URL does not answer ({error})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
