"""A token bucket per API key (``CLINIC_RATE_LIMIT``), kept in this API process's memory: with N
API processes behind a balancer a key may make up to N times the rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import falcon

from api.errors import ProblemError
from clinic.config import RateLimit

#: Buckets kept before the full ones (idle long enough to refill) are dropped.
MAX_BUCKETS = 10_000


class Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens, self.updated = tokens, now


class TokenBuckets:
    """``take(key)`` is 0 when the key may go on, else the seconds until it may."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        rate, burst = self.limit.per_second, self.limit.burst
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_full(now)
                bucket = self._buckets[key] = Bucket(burst, now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate

    def _forget_full(self, now: float) -> None:
        full_after = self.limit.burst / self.limit.per_second
        for key in [key for key, bucket in self._buckets.items() if now - bucket.updated >= full_after]:
            del self._buckets[key]


class RateLimiter:
    """Middleware after authentication: a request to a resource with a ``scope`` takes a token from
    its key's bucket (an anonymous one in open mode, from its address's); none left is 429."""

    def __init__(self, buckets: TokenBuckets | None) -> None:
        self.buckets = buckets

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if self.buckets is None or getattr(resource, "scope", None) is None:
            return
        principal = req.context.principal
        key = f"key:{principal.key_id}" if principal is not None else f"address:{req.remote_addr}"
        wait = self.buckets.take(key)
        if wait:
            limit = self.buckets.limit
            raise ProblemError(
                falcon.HTTP_429,
                f"more than {limit.per_second:g} requests a second (bursts of {limit.burst}) with this key",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
