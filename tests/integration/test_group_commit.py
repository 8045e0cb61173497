"""Group commit on real databases (SQLite file and PostgreSQL): concurrent bookings share
transactions, each request returns only once its own row is committed, and a write that fails
fails alone."""

from __future__ import annotations

import threading

import peewee
import pytest

from clinic import bookings, store
from clinic.store import Booking, BookingEvent, GroupCommit
from tests.support import slot

THREADS = 40


def run_together(count: int, work) -> list:
    """``work(n)`` on ``count`` threads released at once; each result, or the exception it raised."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def one(n: int) -> None:
        barrier.wait()
        with store.database.connection_context():
            try:
                results[n] = work(n)
            except Exception as error:
                results[n] = error

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_bookings_share_transactions_and_each_is_committed_when_it_returns(db, settings):
    group = GroupCommit()

    def book(n: int):
        body = {"patient": f"Patient {n}", "slot": slot(9 + n // 10 % 8, 30 * (n % 2)), "doctor_id": 1 + n % 2}
        booking = bookings.request_booking(settings, body, commit=group)
        # Committed before it returned: this thread's own connection sees the row and its history.
        return Booking.get_by_id(booking.id).status, BookingEvent.get(BookingEvent.booking == booking.id).status

    assert run_together(THREADS, book) == [("pending", "pending")] * THREADS
    assert Booking.select().count() == THREADS
    assert group.writes == THREADS
    assert group.transactions < THREADS  # some really were committed together


def test_a_write_that_fails_fails_alone(db, settings):
    group = GroupCommit()
    taken = "00000000-0000-4000-8000-000000000001"

    def book(n: int):
        body = {"patient": f"Patient {n}", "slot": slot(10)}
        new_id = (lambda: taken) if n < 2 else None  # two requests claim one id: one must fail
        options = {"new_id": new_id} if new_id else {}
        return bookings.request_booking(settings, body, commit=group, **options).id

    results = run_together(12, book)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and isinstance(failures[0], peewee.IntegrityError)
    stored = {b.id for b in Booking.select()}
    assert stored == {r for r in results if isinstance(r, str)}
    assert len(stored) == 11 and taken in stored
    assert BookingEvent.select().count() == 11  # the failed one left no half-written history


def test_a_database_that_is_away_answers_every_waiter(settings, tmp_path):
    store.connect(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")  # its folder does not exist
    group = GroupCommit()
    with pytest.raises(peewee.OperationalError):
        group(lambda: None)


def test_a_workers_confirmations_share_transactions_and_one_slot_still_goes_to_one_booking(db, settings):
    """A worker process's confirmations go through one group commit (``bookings.Committing``).
    Twenty threads confirm twenty bookings, each alone on its slot, at once: all are confirmed,
    sharing transactions. Then twenty threads confirm twenty bookings that want one doctor's
    slot: exactly one is confirmed, the rest are told CONFLICT and stay pending (a batch with a
    conflict is run again one write at a time). Each answer holds once it is returned."""
    group = GroupCommit()
    books = bookings.Committing(group)

    def confirm_together(wanted: list[dict]) -> list:
        ids = [bookings.request_booking(settings, {"patient": f"Patient {n}", **w}).id for n, w in enumerate(wanted)]

        def confirm(n: int):
            outcome = books.confirm(ids[n], wanted[n]["doctor_id"])
            return outcome, Booking.get_by_id(ids[n]).status  # this thread's own connection reads it

        return run_together(len(ids), confirm)

    alone = confirm_together([{"slot": slot(9 + n % 4, weekday=n // 4), "doctor_id": 2} for n in range(20)])
    assert alone == [(bookings.Outcome.CHANGED, "confirmed")] * 20
    assert group.writes == 20 and group.transactions < 20  # some really were committed together

    contested = confirm_together([{"slot": slot(15), "doctor_id": 1} for _ in range(20)])
    assert sorted(contested, key=str) == sorted(
        [(bookings.Outcome.CHANGED, "confirmed")] + [(bookings.Outcome.CONFLICT, "pending")] * 19, key=str
    )
