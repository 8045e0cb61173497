"""``python -m bench.readme [RESULTS]``: the README's "Performance" section, in Markdown, from a
results file (default ``bench/results/latest.json``), so publishing the figures is one paste."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import REPO
from bench.report import cpu_line, drift, paired, paired_line


def section(results: dict) -> str:
    """The Performance section: figures, floors, ratios, targets, the machine and the command."""
    floors, api, pipeline, memory = results["floors"], results["api"], results["pipeline"], results["memory"]
    half, machine = pipeline.get("half", {}), results["machine"]

    def http_row(name: str, figures: dict, floor: str) -> str:
        sat, at_half = figures["saturation"], figures["half"]
        return (
            f"| {name} | {sat['rps']:.0f} req/s | {sat['p50_ms']} / {sat['p99_ms']} ms "
            f"| {at_half['p50_ms']} / {at_half['p99_ms']} ms | {floor} |"
        )

    ratios = results["ratios"]
    lines = [
        "## Performance",
        "",
        f"Measured by `make bench` (`{results['command']}`, {results['mode']} mode, {results['database']}) "
        f"on {results['started_at'][:10]}: {machine['cpus']} x {machine['cpu']}, {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, RabbitMQ {machine['rabbitmq']}; load average "
        f"{machine['loadavg_start'][0]} at the start. {results['settings'].get('api_processes', 1)} API "
        f"process(es) and {results['settings'].get('queue_type', 'classic')} queues unless said otherwise, "
        "simulated delays off; every figure is set against a floor "
        "measured in the same run on the same machine, so read the ratios, not the absolute numbers.",
        "",
        "| Measure | Throughput | p50 / p99 at saturation | p50 / p99 at half saturation | vs floor |",
        "|---|---|---|---|---|",
        http_row("HTTP floor: bare Falcon app, same waitress", floors["http"], "1"),
        http_row("`POST /book` (API alone)", api["post_book"], str(ratios["post_book_vs_http_floor"])),
        http_row("`GET /booking/{id}` (API alone)", api["get_booking"], str(ratios["get_booking_vs_http_floor"])),
        f"| Broker floor: pika, {floors['broker']['hops']} durable queues, confirm per hop "
        f"| {floors['broker']['rate']:.0f} msg/s | | | 1 |",
        f"| Pipeline: `POST /book` to notification, {pipeline['bookings']} bookings "
        f"| {pipeline['rate']:.0f} bookings/s | "
        f"| end-to-end {half.get('p50_ms')} / {half.get('p99_ms')} ms (p95 {half.get('p95_ms')}) "
        f"| {ratios['pipeline_vs_broker_floor']} |",
    ]
    lines += [
        f"| Pipeline, {s['bookings']} bookings: {s.get('api_processes', 1)} API process(es), "
        f"{s['worker_processes']} worker process(es) x {s['worker_threads']} threads per queue "
        f"| {s['rate']:.0f} bookings/s | | | |"
        for s in results["scaling"]
    ]
    workers = ", ".join(
        f"{stage} {max((v for v in values if v is not None), default='-')}"
        for stage, values in memory["worker_peak_rss_mib"].items()
    )
    check = results["integrity"]
    cpu = [
        (what, figures.get("cpu"))
        for what, figures in (
            ("per request of the HTTP floor", floors["http"]),
            ("per message of the broker floor", floors["broker"]),
            ("per `POST /book`, API alone", api["post_book"]),
            ("per booking through the pipeline", pipeline),
        )
    ]
    if rounds := paired(results):
        lines += [
            "",
            f"`POST /book` against the same-work floor, loaded by turns in {len(rounds['ratios'])} rounds "
            f"(saturation, then half of it, each right after the other): {paired_line(rounds)}.",
        ]
    if end := results.get("floors_end"):
        moved = drift(results)
        lines += [
            "",
            f"The floors read again at the end of the run: same-work {end['same_work']['saturation']['rps']:.0f} "
            f"req/s ({moved.get('same_work', 0):+g}%), broker {end['broker']['rate']:.0f} msg/s "
            f"({moved.get('broker', 0):+g}%); the ratios set each figure against the mean of the two readings.",
        ]
    if steady := pipeline.get("steady"):
        lines += [
            "",
            f"End-to-end at a steady {steady['rate']:g} bookings/s (open loop, {steady['bookings']} bookings, "
            f"request sent to notification seen): p50 {steady['p50_ms']} / p95 {steady['p95_ms']} / "
            f"p99 {steady['p99_ms']} ms; `POST /book` p99 {steady['post_book_p99_ms']} ms.",
        ]
    lines += [""] + [
        f"CPU {what}: {cpu_line(figures)} ({figures['cores_busy']} of {figures['cores']} cores busy)."
        for what, figures in cpu
        if figures
    ]
    lines += [
        f"Peak RSS (VmHWM): API {memory['api_peak_rss_mib']} MiB; workers (MiB) {workers}.",
        f"Bookings: {check['accepted']} accepted, {check['confirmed']} confirmed and announced, "
        f"{check['pending']} pending, {check['lost']} lost (the benchmark fails on any lost or pending).",
        "",
        "| Target | Value | Bound | Met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t['target']} | {t['value']} | {t['bound']} | {'yes' if t['met'] else 'no' if t['met'] is False else '-'} |"
        for t in results["targets"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else REPO / "bench" / "results" / "latest.json"
    print(section(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
