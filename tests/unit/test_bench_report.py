"""The benchmark's ratios against its floors: Python CPU per hop against the pika floor's, a floor
read at both ends of a run, and POST /book against the same-work floor in rounds by turns."""

from __future__ import annotations

from bench.report import drift, floor, paired, paired_line, python_cpu_per_hop, ratios, readings, targets


def results(pipeline_ms: dict[str, float], floor_ms: dict[str, float]) -> dict:
    return {
        "pipeline": {"cpu": {"ms_per_unit": pipeline_ms}},
        "floors": {"broker": {"hops": 4, "cpu": {"ms_per_unit": floor_ms}}},
    }


def test_the_workers_and_the_relay_count_and_the_producer_and_the_broker_do_not():
    measured = results(
        {
            "api": 1.1,
            "worker-process": 1.0,
            "worker-confirm": 1.0,
            "worker-notify": 0.9,
            "worker-reject": 0.0,
            "relay": 0.5,
            "rabbitmq": 0.9,
            "bench (subscriber)": 0.2,
            "load generator": 0.2,
        },
        {"pika clients": 1.4, "rabbitmq": 1.8},
    )
    assert python_cpu_per_hop(measured) == round(3.4 / 1.4, 3)


def test_without_cpu_figures_there_is_no_ratio():
    assert python_cpu_per_hop({"pipeline": {}, "floors": {"broker": {"hops": 4}}}) is None


def test_a_floor_read_twice_counts_as_the_mean_of_its_readings():
    measured = results({"worker-confirm": 3.0}, {"pika clients": 1.0})
    measured["floors_end"] = {"broker": {"hops": 4, "cpu": {"ms_per_unit": {"pika clients": 2.0}}}}
    assert python_cpu_per_hop(measured) == 2.0
    measured["floors"]["broker"]["rate"], measured["floors_end"]["broker"]["rate"] = 400, 300
    assert readings(measured, "broker", "rate") == [400, 300]
    assert floor(measured, "broker", "rate") == 350
    assert drift(measured) == {"broker": -25.0}


def test_a_floor_read_once_is_its_only_reading_and_shows_no_drift():
    measured = results({"worker-confirm": 3.0}, {"pika clients": 1.5})
    measured["floors"]["broker"]["rate"] = 400
    assert floor(measured, "broker", "rate") == 400
    assert floor(measured, "same_work", "saturation", "rps") is None
    assert python_cpu_per_hop(measured) == 2.0
    assert drift(measured) == {}


def http(rps: float, half_p99: float) -> dict:
    return {"saturation": {"rps": rps}, "half": {"p99_ms": half_p99}}


def with_rounds(*rounds: tuple[tuple[float, float], tuple[float, float]]) -> dict:
    """A run whose POST /book alone made 300 req/s against same-work floors of 400 at both ends,
    with ``rounds`` of ((POST /book rps, p99 at half), (floor rps, p99 at half))."""
    measured = {
        "floors": {"http": http(1000, 2), "same_work": http(400, 5), "broker": {"rate": 100}},
        "floors_end": {"same_work": http(400, 5), "broker": {"rate": 100}},
        "api": {"post_book": http(300, 9), "get_booking": http(500, 3)},
        "pipeline": {"rate": 60},
        "memory": {"api_peak_rss_mib": 60, "max_worker_peak_rss_mib": 40},
        "scaling": [],
    }
    measured["api"]["paired"] = [{"post_book": http(*post), "same_work": http(*same)} for post, same in rounds]
    return measured


def test_post_book_against_the_same_work_floor_is_the_median_of_its_rounds():
    measured = with_rounds(((600, 8), (400, 10)), ((450, 12), (500, 9)), ((520, 7), (400, 8)))
    rounds = paired(measured)
    assert rounds["ratios"] == [1.5, 0.9, 1.3] and rounds["ratio"] == 1.3
    assert rounds["p99_differences_ms"] == [-2, 3, -1] and rounds["p99_difference_ms"] == -1
    assert (
        paired_line(rounds)
        == "ratios 1.5, 0.9, 1.3 (median 1.3); p99 at half minus the floor's -2, +3, -1 ms (median -1)"
    )
    measured["ratios"] = ratios(measured)
    assert measured["ratios"]["post_book_vs_same_work_floor"] == 1.3  # not 300 / 400 from the lone run
    found = {row["target"]: row for row in targets(measured)}
    assert found["POST /book / same-work floor"]["met"] is True
    assert found["POST /book p99 at half minus the same-work floor's (ms)"]["value"] == -1
    assert found["POST /book p99 at half minus the same-work floor's (ms)"]["met"] is True


def test_a_run_without_rounds_sets_post_book_against_the_floors_mean():
    measured = with_rounds()
    assert paired(measured) is None
    measured["ratios"] = ratios(measured)
    assert measured["ratios"]["post_book_vs_same_work_floor"] == 0.75
    found = {row["target"]: row for row in targets(measured)}
    assert found["POST /book p99 at half minus the same-work floor's (ms)"]["value"] == 4
    assert found["POST /book / same-work floor"]["met"] is False
