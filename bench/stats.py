"""Percentiles and rates for the figures the benchmark reports (milliseconds, per second)."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1), or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of durations given in seconds, as milliseconds rounded to 0.01."""
    figures = {f"p{int(q * 100)}_ms": percentile(seconds, q) for q in (0.5, 0.95, 0.99)}
    figures["max_ms"] = max(seconds) if seconds else None
    return {key: None if value is None else round(value * 1000, 2) for key, value in figures.items()}


def rate(count: int, seconds: float) -> float:
    """Events per second, rounded to 0.1 (0 when no time passed)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
