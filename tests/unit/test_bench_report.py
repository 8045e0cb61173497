"""The benchmark's ratio of Python CPU per hop to the pika floor's, from the CPU figures it records."""

from __future__ import annotations

from bench.report import python_cpu_per_hop


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
