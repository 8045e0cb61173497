"""The per-key token bucket, with a clock the test turns."""

from __future__ import annotations

from api.ratelimit import TokenBuckets
from clinic.config import RateLimit


def test_a_bucket_lets_a_burst_through_then_one_request_per_refill():
    now = [0.0]
    buckets = TokenBuckets(RateLimit(2.0, 3), clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # half a second until the next token
    assert buckets.take("b") == 0.0  # another key has its own bucket
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    now[0] = 100.0
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # it never holds more than the burst
