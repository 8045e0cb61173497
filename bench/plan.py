"""How much load each phase gets: the full benchmark, and the quick one that a test runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    """Counts and time bounds of one run; every load stops at whichever bound comes first."""

    name: str
    http_count: int  # requests of one HTTP saturation run, at most
    http_seconds: float  # and its duration, at most (the half-rate run lasts as long)
    broker_messages: int
    pipeline_bookings: int  # the saturation run; the issue asks for at least 5,000
    half_seconds: float  # the pipeline at half its saturation rate, for end-to-end latency
    steady_rate: float  # bookings a second of the steady run: end-to-end latency at a fixed, modest load
    steady_seconds: float
    #: (API processes, worker processes per queue) of each pipeline run; the first is the full run
    #: (API alone, saturation, half rate), the others only measure the pipeline's saturated rate.
    scaling: tuple[tuple[int, int], ...]
    scaling_bookings: int  # bookings of each pipeline run after the first (at most pipeline_bookings)
    concurrency: int  # connections of a closed-loop run (twice waitress's 8 threads)
    drain_seconds: float  # how long the pipeline may take to finish after the last request
    slots_requests: int  # GET /slots of 31 days, one after another, against 10,000 stored bookings
    #: Rounds of ``POST /book`` and the same-work floor loaded by turns (``Benchmark.paired_rounds``).
    paired_rounds: int

    def with_bookings(self, bookings: int | None) -> Plan:
        return self if bookings is None else replace(self, pipeline_bookings=bookings)

    def with_api_processes(self, processes: int | None) -> Plan:
        """Every run with ``processes`` API processes, the worker processes as planned (1 and 2)."""
        if processes is None:
            return self
        return self.with_scaling([(processes, workers) for _, workers in self.scaling])

    def with_scaling(self, pairs: Sequence[tuple[int, int]] | None) -> Plan:
        """These (API processes, worker processes) runs, in this order, each once."""
        return self if not pairs else replace(self, scaling=tuple(dict.fromkeys(pairs)))

    @property
    def api_processes(self) -> int:
        """The API processes of the full run: what the API-alone and latency figures were measured with."""
        return self.scaling[0][0]


FULL = Plan(
    name="full",
    http_count=30000,
    http_seconds=5.0,
    broker_messages=5000,
    pipeline_bookings=5000,
    half_seconds=10.0,
    steady_rate=30.0,
    steady_seconds=10.0,
    scaling=((1, 1), (1, 2), (2, 2)),
    scaling_bookings=2000,  # about 20 s a run at this machine's rate: the whole bench stays near 2.5 min
    concurrency=16,
    drain_seconds=240.0,
    slots_requests=1000,
    paired_rounds=3,
)

QUICK = Plan(
    name="quick",
    http_count=3000,
    http_seconds=1.0,
    broker_messages=300,
    pipeline_bookings=300,
    half_seconds=2.0,
    steady_rate=30.0,
    steady_seconds=2.0,
    scaling=((1, 1), (1, 2)),
    scaling_bookings=300,
    concurrency=16,
    drain_seconds=60.0,
    slots_requests=100,
    paired_rounds=2,
)
