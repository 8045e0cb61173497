"""The per-key token bucket, with a clock the test turns."""

from __future__ import annotations

from falcon import testing

from api.app import create_app
from api.ratelimit import TokenBuckets
from clinic import keys, store
from clinic.config import RateLimit, Settings
from tests.support import slot


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


def test_a_key_over_its_rate_gets_429_problem_json_with_retry_after(sqlite_url):
    store.connect(sqlite_url)
    store.create_schema()
    settings = Settings.from_env({"CLINIC_RATE_LIMIT": "1/s:2"})
    now = [0.0]
    client = testing.TestClient(create_app(settings, dispatch=lambda _: None, checks={}, clock=lambda: now[0]))
    alice = {"Authorization": f"Bearer {keys.create_key('alice', 'client').token}"}
    bob = {"Authorization": f"Bearer {keys.create_key('bob', 'client').token}"}

    def book(headers):
        return client.simulate_post("/book", json={"patient": "Ana", "slot": slot()}, headers=headers)

    assert [book(alice).status_code for _ in range(2)] == [202, 202]
    limited = book(alice)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json["status"] == 429 and limited.json["title"] == "Too Many Requests"
    assert book(bob).status_code == 202
    assert client.simulate_get("/health").status_code == 200  # public endpoints take no token
    now[0] = 1.0
    assert book(alice).status_code == 202
    store.database.close()
