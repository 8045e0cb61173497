"""``python -m bench [--quick] [--db postgresql]``: measure, print the table, write the JSON; exit 1
when any booking of the run was lost, left pending or refused (the figures are then worthless)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import REPO, machine, report
from bench.plan import FULL, QUICK
from bench.run import Benchmark
from bench.system import clinic_env
from clinic.config import QUEUE_TYPES, Settings

DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"


def process_pairs(text: str) -> list[tuple[int, int]]:
    """``1x1,1x2,2x2``: (API processes, worker processes per queue) of each pipeline run."""
    pairs = []
    for item in text.split(","):
        api, _, workers = item.strip().partition("x")
        try:
            pair = (int(api), int(workers))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not APIxWORKERS, e.g. 2x1") from None
        if not all(1 <= n <= 64 for n in pair):
            raise argparse.ArgumentTypeError(f"{item!r}: processes must be from 1 to 64")
        pairs.append(pair)
    return pairs


def processes(text: str) -> int:
    number = int(text)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be from 1 to 64")
    return number


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under a minute (what the test runs)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite", help="the store (default sqlite)")
    parser.add_argument("--bookings", type=int, metavar="N", help="bookings of the pipeline run (default 5000)")
    parser.add_argument(
        "--queue-type",
        choices=QUEUE_TYPES,
        default="classic",
        help="RabbitMQ queues of every run and of the broker floor (CLINIC_QUEUE_TYPE, default classic)",
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        "--api-processes",
        type=processes,
        metavar="N",
        help="API processes (CLINIC_API_PROCESSES) of every run, default 1: the pipeline is then measured "
        "with N API processes and 1, then 2 worker processes per queue",
    )
    runs.add_argument(
        "--scaling",
        type=process_pairs,
        metavar="AxW,...",
        help="the pipeline runs as API processes x worker processes per queue, the first being the full "
        "run (default 1x1,1x2, and 2x2 in full mode)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the API and workers into DIR")
    parser.add_argument("--profile-gil", action="store_true", help="with --profile: only the thread holding the GIL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and SQLite files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    plan = (QUICK if args.quick else FULL).with_bookings(args.bookings)
    plan = plan.with_api_processes(args.api_processes).with_scaling(args.scaling)
    env = clinic_env("bench", "sqlite:///unused.db", 1, api_processes=plan.api_processes, queue_type=args.queue_type)
    settings = Settings.from_env(env)
    logs = Path(tempfile.mkdtemp(prefix="clinic-bench-"))
    started = time.monotonic()
    results: dict = {
        "benchmark": "clinic booking pipeline",
        "mode": plan.name,
        "database": args.db,
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(settings.broker_url),
        "settings": {
            "queue_type": settings.queue_type,
            "api_processes": settings.api_processes,
            "api_threads": settings.api_threads,
            "worker_threads": settings.worker_threads,
            "concurrency": plan.concurrency,
            "confirm_delay": 0,
            "unavailability_rate": 0,
        },
    }
    try:
        benchmark = Benchmark(
            plan,
            database=args.db,
            logs=logs,
            queue_type=settings.queue_type,
            profile=args.profile,
            profile_gil=args.profile_gil,
        )
        results.update(benchmark.run())
    except Exception as error:
        print(f"bench: {type(error).__name__}: {error}\nlogs kept in {logs}", file=sys.stderr)
        return 2
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["ok"] = results["integrity"]["ok"]
    report.write(results, args.out)
    print(report.table(results))
    print(f"\nwritten to {args.out} in {results['duration_s']}s", file=sys.stderr)
    if not results["ok"]:
        print(f"bench: FAILED, not every booking ended confirmed and announced; logs kept in {logs}", file=sys.stderr)
        return 1
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
