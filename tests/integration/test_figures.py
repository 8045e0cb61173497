"""The figures /metrics reads from the database (``clinic.figures``), on SQLite and PostgreSQL:
bookings counted per status they reached, and the time from pending to the first final status."""

from __future__ import annotations

from datetime import timedelta

from clinic import bookings, figures
from clinic.config import Settings
from clinic.store import utcnow
from tests.support import slot


def booked(settings, when, *, at):
    return bookings.request_booking(settings, {"patient": "Ana", "slot": when}, now=lambda: at).id


def test_bookings_are_counted_per_status_and_timed_from_pending_to_their_decision(db):
    settings = Settings.from_env({"CLINIC_DOCTORS": "Dr. A;Dr. B"})
    start = utcnow()
    fast = booked(settings, slot(10, 0), at=start)
    slow = booked(settings, slot(11, 0), at=start)
    dropped = booked(settings, slot(12, 0), at=start)
    waiting = booked(settings, slot(13, 0), at=start - timedelta(seconds=30))
    assert bookings.confirm(fast, 1, now=lambda: start + timedelta(seconds=0.2)) is bookings.Outcome.CHANGED
    assert bookings.reject(slow, "no", now=lambda: start + timedelta(seconds=40)) is bookings.Outcome.CHANGED
    assert bookings.cancel(dropped, now=lambda: start + timedelta(seconds=3)) is bookings.Outcome.CHANGED
    # A cancellation after a confirmation is counted, but the booking's decision was the confirmation.
    assert bookings.cancel(fast, now=lambda: start + timedelta(seconds=90)) is bookings.Outcome.CHANGED

    assert figures.status_counts() == {"pending": 4, "confirmed": 1, "rejected": 1, "cancelled": 2}
    decided = {d.status: d for d in figures.decision_times(buckets=(0.25, 5.0, 60.0))}
    assert decided["confirmed"].buckets == ((0.25, 1), (5.0, 1), (60.0, 1))
    assert decided["rejected"].buckets == ((0.25, 0), (5.0, 0), (60.0, 1))
    assert decided["cancelled"].buckets == ((0.25, 0), (5.0, 1), (60.0, 1))
    assert decided["cancelled"].count == 1 and abs(decided["cancelled"].total_seconds - 3) < 0.01
    assert abs(decided["rejected"].total_seconds - 40) < 0.01
    assert 29 < figures.oldest_pending_age() < 60
    bookings.cancel(waiting)
    assert figures.oldest_pending_age() == 0.0
