"""The benchmark's ratios against its floors: Python CPU per hop against the pika floor's, and a floor
read at both ends of a run."""

from __future__ import annotations

from bench.report import drift, floor, python_cpu_per_hop, readings


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
