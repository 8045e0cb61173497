"""``GET /slots`` against a stored calendar: 10,000 bookings, a 31-day range for every doctor.

The clinic keeps its real calendar here (weekdays 08:00-18:00, 30-minute slots, three doctors),
not the around-the-clock 5-minute grid of the throughput runs: the question is how long a patient
waits for a month of free slots, and the answer is one query plus the grid in Python. Requests are
sent one after another on one keep-alive connection, so each latency is the API's own."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

from bench.stats import summary_ms
from bench.system import System, clinic_env
from clinic import keys, slots, store
from clinic.bookings import CANCELLED, CONFIRMED, PENDING, REJECTED
from clinic.config import Settings
from clinic.store import Booking

BOOKINGS = 10_000
# No rate limit: the figure is the endpoint's own latency, not the limiter's.
CALENDAR = {"CLINIC_HOURS": "Mon-Fri 08:00-18:00", "CLINIC_SLOT_MINUTES": "30", "CLINIC_RATE_LIMIT": "0"}


def store_calendar(settings: Settings, count: int, *, seed: int = 8) -> int:
    """``count`` bookings over the next 180 days: every (doctor, slot) at most once confirmed, the
    rest pending, rejected or cancelled; returns how many are confirmed."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    today = now.astimezone(settings.timezone).date()
    starts = slots.grid(settings, today, today + timedelta(days=180), now=now)
    doctors = range(1, len(settings.doctors) + 1)
    free_pairs = [(doctor, start) for start in starts for doctor in doctors]
    rng.shuffle(free_pairs)
    rows, confirmed = [], 0
    for n in range(count):
        status = rng.choices((CONFIRMED, PENDING, REJECTED, CANCELLED), (5, 2, 2, 1))[0]
        if status == CONFIRMED and free_pairs:
            doctor, start = free_pairs.pop()
            confirmed += 1
        else:
            status = status if status != CONFIRMED else REJECTED
            doctor, start = rng.choice(doctors), rng.choice(starts)
        rows.append(
            {
                "id": f"00000000-0000-4000-8000-{n:012d}",
                "patient": f"Bench patient {n}",
                "slot": start,
                "requested_doctor_id": doctor if rng.random() < 0.5 else None,
                "doctor_id": doctor if status == CONFIRMED or rng.random() < 0.5 else None,
                "status": status,
                "owner": "bench",
                "created_at": now,
                "updated_at": now,
            }
        )
    with store.database.atomic():
        for first in range(0, len(rows), 500):
            Booking.insert_many(rows[first : first + 500]).execute()
    return confirmed


def measure(
    database_url: str,
    namespace: str,
    logs: Path,
    *,
    port: int,
    requests: int,
    api_processes: int = 1,
    queue_type: str = "classic",
) -> dict:
    """Store the calendar, start ``clinic api`` on it and time ``requests`` GET /slots of 31 days."""
    env = {**clinic_env(namespace, database_url, 1, api_processes=api_processes, queue_type=queue_type), **CALENDAR}
    settings = Settings.from_env(env)
    store.connect(database_url)
    store.create_schema()
    with store.database.connection_context():
        confirmed = store_calendar(settings, BOOKINGS)
        token = keys.create_key("bench", keys.CLIENT).token
    store.database.close()
    logs.mkdir(parents=True, exist_ok=True)
    system = System(env, port, logs)
    try:
        system.start_api()
        first = datetime.now(settings.timezone).date()
        path = f"/slots?from={first}&to={first + timedelta(days=slots.MAX_DAYS - 1)}"
        connection = HTTPConnection("127.0.0.1", system.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        latencies, listed, statuses = [], 0, set()
        for _ in range(requests + 20):  # the first 20 warm the pool and the code up; not counted
            sent = time.perf_counter()
            connection.request("GET", path, headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            latencies.append(time.perf_counter() - sent)
            statuses.add(reply.status)
            listed = body.count(b'"doctor_id"')
        connection.close()
    finally:
        system.stop()
    return {
        "bookings_stored": BOOKINGS,
        "confirmed_stored": confirmed,
        "days": slots.MAX_DAYS,
        "doctors": len(settings.doctors),
        "slots_listed": listed,
        "statuses": sorted(statuses),
        **summary_ms(latencies[20:]),
    }
