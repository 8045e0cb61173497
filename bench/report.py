"""The results as a table for people and as JSON for tools; the issue's targets, checked as ratios."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.plan import FULL
from bench.stats import ratio


def ratios(results: dict) -> dict:
    """Every headline figure over its floor from the same run, so the figures hold on a noisy machine.
    The same-work and broker floors are read at the start and again at the end of the run; a figure
    is set against the mean of the two readings (``floor``). ``POST /book`` against the same-work
    floor is the median of the paired rounds (``paired``) when the run has them."""
    http = results["floors"]["http"]["saturation"]["rps"]
    same_work = floor(results, "same_work", "saturation", "rps")
    post_book = results["api"]["post_book"]["saturation"]["rps"]
    rounds = paired(results)
    return {
        "post_book_vs_http_floor": ratio(post_book, http),
        "post_book_vs_same_work_floor": rounds["ratio"] if rounds else ratio(post_book, same_work),
        "get_booking_vs_http_floor": ratio(results["api"]["get_booking"]["saturation"]["rps"], http),
        "pipeline_vs_broker_floor": ratio(results["pipeline"]["rate"], floor(results, "broker", "rate")),
        "python_cpu_per_hop_vs_pika_floor": python_cpu_per_hop(results),
    }


def readings(results: dict, name: str, *path: str) -> list[float]:
    """A floor's figure at the start of the run and, when it was read again, at the end."""
    found = []
    for floors in (results["floors"], results.get("floors_end", {})):
        value = floors.get(name)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            found.append(value)
    return found


def floor(results: dict, name: str, *path: str) -> float | None:
    """The mean of a floor's readings (None when it was not measured)."""
    found = readings(results, name, *path)
    return sum(found) / len(found) if found else None


def drift(results: dict) -> dict:
    """How far each floor moved between the start and the end of the run, in percent of the first
    reading: what the machine itself did meanwhile (empty for a run that read the floors once)."""
    moved = {}
    for name, path in (("same_work", ("saturation", "rps")), ("broker", ("rate",))):
        found = readings(results, name, *path)
        if len(found) == 2 and found[0]:
            moved[name] = round(100 * (found[1] - found[0]) / found[0], 1) + 0.0  # never "-0"
    return moved


def paired(results: dict) -> dict | None:
    """The rounds in which ``POST /book`` and the same-work floor were loaded by turns: each round's
    ratio of saturated rates and difference of p99 at half, and the median of each (None for a
    run without rounds)."""
    rounds = results["api"].get("paired")
    if not rounds:
        return None
    ratios = [ratio(r["post_book"]["saturation"]["rps"], r["same_work"]["saturation"]["rps"]) for r in rounds]
    differences = [
        _difference(r["post_book"]["half"].get("p99_ms"), r["same_work"]["half"].get("p99_ms")) for r in rounds
    ]
    return {
        "ratios": ratios,
        "ratio": _median(ratios),
        "p99_differences_ms": differences,
        "p99_difference_ms": _median(differences),
    }


def paired_line(rounds: dict) -> str:
    """``paired``'s figures in words: each round's ratio and difference, and their medians."""
    differences = [f"{d:+g}" for d in rounds["p99_differences_ms"] if d is not None]
    median = rounds["p99_difference_ms"]
    return (
        f"ratios {', '.join(map(str, rounds['ratios']))} (median {rounds['ratio']}); p99 at half minus "
        f"the floor's {', '.join(differences)} ms (median {'-' if median is None else f'{median:+g}'})"
    )


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 3) if known else None


def python_cpu_per_hop(results: dict) -> float | None:
    """The pipeline's Python CPU per booking per hop (the worker groups and the relay: four hops, as
    the broker floor has) over the pika clients' CPU per message per hop in the broker floor (the
    mean of its readings). The floor's clients include its producer, so the bound is generous; the
    API, the pipeline's producer, is left out on our side."""
    cpu = results["pipeline"].get("cpu")
    pika = floor(results, "broker", "cpu", "ms_per_unit", "pika clients")
    if not cpu or not pika:
        return None
    ours = sum(ms for name, ms in cpu["ms_per_unit"].items() if name.startswith("worker-") or name == "relay")
    return ratio(ours, pika)


def targets(results: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it is met (None: not measured)."""
    half, steady = results["pipeline"].get("half", {}), results["pipeline"].get("steady", {})
    post_half_p99 = results["api"]["post_book"]["half"].get("p99_ms")
    rounds = paired(results)
    p99_over_floor = (
        rounds["p99_difference_ms"]
        if rounds
        else _difference(post_half_p99, floor(results, "same_work", "half", "p99_ms"))
    )
    steady_rate = steady.get("rate", FULL.steady_rate)
    workers = [results["memory"]["max_worker_peak_rss_mib"]] + [
        s["max_worker_peak_rss_mib"] for s in results["scaling"]
    ]
    rows = [
        ("pipeline / broker floor", results["ratios"]["pipeline_vs_broker_floor"], ">=", 0.6),
        (
            "Python CPU per booking per hop / pika floor's",
            results["ratios"].get("python_cpu_per_hop_vs_pika_floor"),
            "<=",
            2,
        ),
        ("POST /book / HTTP floor", results["ratios"]["post_book_vs_http_floor"], ">=", 0.4),
        ("POST /book / same-work floor", results["ratios"].get("post_book_vs_same_work_floor"), ">=", 1.2),
        (
            "POST /book p99 at half minus the same-work floor's (ms)",
            p99_over_floor,
            "<=",
            0,
        ),
        ("POST /book p99 at half saturation (ms)", post_half_p99, "<", 50),
        ("end-to-end p99 at half saturation (ms)", half.get("p99_ms"), "<", 100),
        (f"end-to-end p99 at a steady {steady_rate:g} bookings/s (ms)", steady.get("p99_ms"), "<", 50),
        ("API peak RSS (MiB)", results["memory"]["api_peak_rss_mib"], "<", 80),
        ("worker peak RSS, largest (MiB)", max((w for w in workers if w is not None), default=None), "<", 100),
        ("GET /slots p99, 31 days, 10,000 bookings (ms)", results.get("slots", {}).get("p99_ms"), "<", 50),
    ]
    return [
        {
            "target": name,
            "value": value,
            "bound": f"{op} {bound}",
            "met": None if value is None else {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op],
        }
        for name, value, op, bound in rows
    ]


def _difference(value: float | None, floor: float | None) -> float | None:
    return None if value is None or floor is None else round(value - floor, 2)


def table(results: dict) -> str:
    """A plain-text table of the latest figures (the README's Performance section shows the same)."""
    floors, api, pipeline = results["floors"], results["api"], results["pipeline"]
    http, broker = floors["http"], floors["broker"]
    half = pipeline.get("half", {})

    def saturation(figures: dict) -> str:
        return f"{figures['saturation']['rps']:.0f} req/s"

    def latency(figures: dict) -> str:
        return f"p50 {figures.get('p50_ms')} / p99 {figures.get('p99_ms')} ms"

    rows = [
        ("HTTP floor (bare Falcon, same waitress)", saturation(http), latency(http["half"])),
        *(
            [("same-work floor (commit + confirmed publish)", saturation(same), latency(same["half"]))]
            if (same := floors.get("same_work"))
            else []
        ),
        ("POST /book", saturation(api["post_book"]), latency(api["post_book"]["half"])),
        ("GET /booking/{id}", saturation(api["get_booking"]), latency(api["get_booking"]["half"])),
        (f"broker floor (pika, {broker['hops']} hops)", f"{broker['rate']:.0f} msg/s", ""),
        (
            f"pipeline, {pipeline['bookings']} bookings",
            f"{pipeline['rate']:.0f} bookings/s",
            f"end-to-end at half: p50 {half.get('p50_ms')} / p95 {half.get('p95_ms')} / p99 {half.get('p99_ms')} ms",
        ),
    ]
    if rounds := paired(results):
        rows.append(
            (
                f"POST /book / same-work floor, {len(rounds['ratios'])} rounds by turns",
                f"median {rounds['ratio']}",
                paired_line(rounds),
            )
        )
    if end := results.get("floors_end"):
        moved = drift(results)
        rows += [
            (
                "same-work floor, again at the end",
                saturation(end["same_work"]),
                f"{moved.get('same_work', 0):+g}% since the start"
                + ("; the ratio is the rounds' median" if rounds else "; the ratios take the mean"),
            ),
            (
                "broker floor, again at the end",
                f"{end['broker']['rate']:.0f} msg/s",
                f"{moved.get('broker', 0):+g}% since the start; the ratios take the mean",
            ),
        ]
    if steady := pipeline.get("steady"):
        rows.append(
            (
                f"pipeline at {steady['rate']:g}/s steady",
                f"{steady['bookings']} bookings",
                f"end-to-end: p50 {steady['p50_ms']} / p95 {steady['p95_ms']} / p99 {steady['p99_ms']} ms",
            )
        )
    if slots := results.get("slots"):
        rows.append(
            (
                f"GET /slots, {slots['days']} days x {slots['doctors']} doctors",
                f"{slots['slots_listed']} slots",
                f"p50 {slots['p50_ms']} / p99 {slots['p99_ms']} ms, {slots['bookings_stored']} bookings stored",
            )
        )
    rows += [
        (
            f"  scaling: API x{s.get('api_processes', 1)}, workers {s['worker_processes']} x {s['worker_threads']} "
            "threads / queue",
            f"{s['rate']:.0f} bookings/s",
            f"{s['bookings']} bookings",
        )
        for s in results["scaling"]
    ]
    if counted := results.get("statements"):
        rows.append(
            (
                "SQL per booking (statements, commits)",
                f"{sum(p['statements'] for p in counted.values())} statements",
                ", ".join(f"{part} {p['statements']}/{p['commits']}" for part, p in counted.items()),
            )
        )
    memory = results["memory"]
    rows.append(
        ("peak RSS", f"API {memory['api_peak_rss_mib']} MiB", f"workers up to {memory['max_worker_peak_rss_mib']} MiB")
    )
    check = results["integrity"]
    rows.append(
        (
            "bookings",
            f"{check['accepted']} accepted",
            f"{check['confirmed']} confirmed, {check['rejected']} rejected, {check['pending']} pending, "
            f"{check['lost']} lost, {check['unannounced']} unannounced",
        )
    )
    cpu_rows = (
        ("CPU per request, HTTP floor", http.get("cpu")),
        ("CPU per request, same-work floor", floors.get("same_work", {}).get("cpu")),
        ("CPU per message, broker floor", broker.get("cpu")),
        ("CPU per POST /book, API alone", api["post_book"].get("cpu")),
        ("CPU per booking, pipeline", pipeline.get("cpu")),
    )
    for name, cpu in cpu_rows:
        if cpu:
            rows.append((name, f"{cpu['cores_busy']}/{cpu['cores']} cores busy", cpu_line(cpu)))
    width = max(len(row[0]) for row in rows)
    lines = [run_line(results), ""]
    lines += [f"{'measure':<{width}}  {'throughput':<18}  latency / notes", "-" * (width + 60)]
    lines += [f"{name:<{width}}  {value:<18}  {note}".rstrip() for name, value, note in rows]
    lines += ["", "ratios: " + ", ".join(f"{k} {v}" for k, v in results["ratios"].items()), "targets:"]
    named = max((len(row["target"]) for row in results["targets"]), default=0)
    for row in results["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[row["met"]]
        lines.append(f"  {row['target']:<{named}} {row['value']!s:>8}  {row['bound']:<8} {verdict}")
    return "\n".join(lines)


def run_line(results: dict) -> str:
    """What was measured: mode, store, queue type and the processes' threads (older results say less)."""
    settings = results.get("settings", {})
    return (
        f"{results.get('mode', '?')} run, {results.get('database', 'sqlite')}, "
        f"{settings.get('queue_type', 'classic')} queues, API {settings.get('api_processes', 1)} process(es) "
        f"x {settings.get('api_threads')} threads, workers x {settings.get('worker_threads')} threads per process"
    )


def cpu_line(cpu: dict) -> str:
    """``api 1.2, worker-process 0.8, ... ms`` for the parts that spent anything."""
    parts = [f"{name} {ms}" for name, ms in cpu["ms_per_unit"].items() if ms]
    return ", ".join(parts) + " ms"


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
