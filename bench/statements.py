"""SQL statements and commits per booking, by the part that runs them: one booking taken through
the same functions the API, the processor, the confirmer, the relay and the notifier call, on a
SQLite file of its own, with SQLite's trace callback counting every statement it executes.

This is exact and repeatable (it does not depend on load), and a change that adds a query to a
hop shows here before it shows in a throughput figure. The relay's figures are per batch (here
the booking's two events, pending and confirmed); the API's include the key check."""

from __future__ import annotations

import re
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.system import DOCTORS, SLOT_MINUTES
from clinic import bookings, keys, lifecycle, store
from clinic.availability import AvailabilitySystem
from clinic.config import Settings
from clinic.ops.relay import relay_once
from clinic.store import Booking

_VERB = re.compile(r"^\s*(\w+)")
_TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Tally:
    """Counts the statements of every connection it is attached to, by verb, under a label."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {}
        self.label = "setup"

    def trace(self, sql: str) -> None:
        match = _VERB.match(sql)
        verb = match.group(1).upper() if match else "OTHER"
        self.counts.setdefault(self.label, Counter())[verb] += 1


def count(settings_env: dict[str, str]) -> dict[str, dict[str, int]]:
    """``{part: {"SELECT": n, "INSERT": n, ..., "statements": n, "commits": n}}`` for one booking."""
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="clinic-statements-") as folder:
        settings = Settings.from_env({**settings_env, "CLINIC_DATABASE_URL": f"sqlite:///{Path(folder) / 's.db'}"})
        database = store.connect(settings.database_url)
        original = database._connect

        def traced_connect(*args, **kwargs):
            connection = original(*args, **kwargs)
            connection.set_trace_callback(tally.trace)
            return connection

        database._connect = traced_connect
        store.create_schema()
        step = SLOT_MINUTES * 60
        when = datetime.fromtimestamp((int(time.time()) // step + 1) * step + 86_400, UTC).isoformat()
        calendar = AvailabilitySystem(0.0)
        sent: list[lifecycle.Step] = []

        def part(label: str, work):
            tally.label = label
            with database.connection_context():
                return work()

        token = part("setup", lambda: keys.create_key("bench", keys.CLIENT).token)

        def api() -> Booking:
            keys.authenticate(token, keys.CLIENT)  # every request with a key
            return bookings.request_booking(settings, {"patient": "Bench", "slot": when})

        booking = part("api", api)
        confirm = part("processor", lambda: lifecycle.process(settings, booking.id, calendar))
        part("confirmer", lambda: lifecycle.confirm(booking.id, confirm.args[1], calendar))
        part("relay", lambda: relay_once(settings, sent.append))
        notify = next(s for s in sent if s.stage == "notify")
        part("notifier", lambda: lifecycle.notifications(settings, *notify.args))
        database.close_all()
    figures = {}
    for label, counter in tally.counts.items():
        if label == "setup":
            continue
        statements = sum(n for verb, n in counter.items() if verb not in _TRANSACTION)
        figures[label] = {**dict(sorted(counter.items())), "statements": statements, "commits": counter["COMMIT"]}
    return figures


def bench_env() -> dict[str, str]:
    """The clinic the benchmark runs: open around the clock on its grid, its doctors."""
    return {
        "CLINIC_HOURS": "Mon-Sun 00:00-24:00",
        "CLINIC_SLOT_MINUTES": str(SLOT_MINUTES),
        "CLINIC_TIMEZONE": "UTC",
        "CLINIC_DOCTORS": ";".join(DOCTORS),
        "CLINIC_CONFIRM_DELAY": "0",
    }
