"""``python -m bench --quick`` runs against the real system and reports every figure, so it cannot rot.

Only the shape of the results and the integrity of the bookings are asserted: timings on a shared
2-core machine say nothing about correctness.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

#: Every figure the README's Performance section is built from, as paths into the JSON.
FIGURES = [
    ("floors", "http", "saturation", "rps"),
    ("floors", "http", "half", "p99_ms"),
    ("floors", "same_work", "saturation", "rps"),
    ("floors", "same_work", "half", "p99_ms"),
    ("floors", "broker", "rate"),
    ("floors_end", "same_work", "saturation", "rps"),
    ("floors_end", "broker", "rate"),
    ("statements", "api", "statements"),
    ("statements", "confirmer", "commits"),
    ("api", "post_book", "saturation", "rps"),
    ("api", "post_book", "saturation", "p50_ms"),
    ("api", "post_book", "saturation", "p99_ms"),
    ("api", "post_book", "half", "p50_ms"),
    ("api", "post_book", "half", "p99_ms"),
    ("api", "get_booking", "saturation", "rps"),
    ("api", "get_booking", "half", "p99_ms"),
    ("pipeline", "rate"),
    ("pipeline", "half", "p50_ms"),
    ("pipeline", "half", "p95_ms"),
    ("pipeline", "half", "p99_ms"),
    ("pipeline", "steady", "rate"),
    ("pipeline", "steady", "p50_ms"),
    ("pipeline", "steady", "p95_ms"),
    ("pipeline", "steady", "p99_ms"),
    ("memory", "api_peak_rss_mib"),
    ("memory", "max_worker_peak_rss_mib"),
    ("ratios", "post_book_vs_http_floor"),
    ("ratios", "pipeline_vs_broker_floor"),
    ("slots", "p99_ms"),
    ("slots", "slots_listed"),
]


def figure(results: dict, path: tuple[str, ...]):
    value = results
    for key in path:
        assert isinstance(value, dict) and key in value, f"results lack {'.'.join(path)}"
        value = value[key]
    return value


def test_the_quick_benchmark_reports_every_figure_and_loses_no_booking(rabbitmq, tmp_path):
    out = tmp_path / "latest.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(out.read_text())
    for path in FIGURES:
        value = figure(results, path)
        assert isinstance(value, (int, float)) and value > 0, f"{'.'.join(path)} is {value!r}"
    assert [entry["worker_processes"] for entry in results["scaling"]] == [1, 2]
    assert [entry["api_processes"] for entry in results["scaling"]] == [1, 1]
    assert results["settings"]["api_processes"] == 1
    assert all(entry["rate"] > 0 for entry in results["scaling"])
    assert set(results["memory"]["worker_peak_rss_mib"]) == {"process", "confirm", "reject", "notify", "webhooks"}
    assert len(results["targets"]) == 11 and all("met" in target for target in results["targets"])
    assert results["pipeline"]["steady"]["rate"] == 30
    assert results["slots"]["statuses"] == [200] and results["slots"]["bookings_stored"] == 10_000
    assert results["machine"]["cpus"] and results["command"].startswith("python -m bench --quick")
    assert results["settings"]["queue_type"] == results["floors"]["broker"]["queue_type"] == "classic"

    integrity = results["integrity"]
    assert integrity["accepted"] >= results["pipeline"]["bookings"] > 0
    assert (integrity["lost"], integrity["pending"], integrity["rejected"], integrity["unannounced"]) == (0, 0, 0, 0)
    assert integrity["confirmed"] == integrity["notified"] == integrity["accepted"]
    assert results["ok"] is True
    assert "pipeline" in finished.stdout and "pipeline at 30/s steady" in finished.stdout
    assert "targets:" in finished.stdout
    assert "broker floor, again at the end" in finished.stdout and "since the start" in finished.stdout

    rounds = results["api"]["paired"]
    assert len(rounds) == 2  # the quick plan's rounds, each with both servers' figures
    for number, paired in enumerate(rounds, 1):
        for name in ("same_work", "post_book"):
            assert paired[name]["saturation"]["rps"] > 0 and paired[name]["half"]["p99_ms"] > 0, (number, name)
            assert paired[name]["saturation"]["errors"] == paired[name]["half"]["errors"] == 0, (number, name)
    assert "2 rounds by turns" in finished.stdout
