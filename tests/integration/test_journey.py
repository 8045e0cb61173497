"""Cancel and reschedule against a real database, SQLite file and PostgreSQL, races included."""

from __future__ import annotations

import threading
from functools import partial

import peewee
import pytest

from clinic import bookings, lifecycle, store
from clinic.availability import AvailabilitySystem
from clinic.bookings import CANCELLED_BY_PATIENT, RESCHEDULED, Outcome
from clinic.errors import BookingNotFound, InvalidField, RescheduleInFlight, TransitionRefused
from clinic.store import Booking, BookingEvent
from tests.support import slot


def book(settings, when=None, **fields):
    return bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": when or slot(10, 0), **fields})


def booked(settings, when=None, doctor_id=1, **fields):
    """A confirmed booking of ``doctor_id``."""
    booking = book(settings, when, **fields)
    assert bookings.confirm(booking.id, doctor_id) is Outcome.CHANGED
    return Booking.get_by_id(booking.id)


def events(booking_id):
    query = BookingEvent.select().where(BookingEvent.booking == booking_id).order_by(BookingEvent.id)
    return [(e.status, e.reason) for e in query]


def fresh(booking_id):
    return Booking.get_by_id(booking_id)


def at_once(*calls):
    """Run each call in its own thread and connection, all released at the same instant."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        with store.database.connection_context():
            start.wait()
            try:
                results[index] = call()
            except Exception as error:  # noqa: BLE001 - the test inspects what each call raised
                results[index] = error

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_cancelling_a_confirmed_booking_frees_its_slot_at_once(db, settings):
    first = booked(settings, doctor_id=1)
    assert bookings.cancel(first.id) is Outcome.CHANGED
    cancelled = fresh(first.id)
    assert (cancelled.status, cancelled.reason) == ("cancelled", CANCELLED_BY_PATIENT)
    assert events(first.id) == [("pending", None), ("confirmed", None), ("cancelled", CANCELLED_BY_PATIENT)]
    second = book(settings, doctor_id=1)
    assert bookings.confirm(second.id, 1) is Outcome.CHANGED


def test_cancelling_again_changes_nothing_and_a_rejected_booking_cannot_be_cancelled(db, settings):
    booking = book(settings)
    assert bookings.cancel(booking.id, "moving abroad") is Outcome.CHANGED
    updated_at = fresh(booking.id).updated_at
    assert bookings.cancel(booking.id, "other reason") is Outcome.ALREADY
    assert (fresh(booking.id).reason, fresh(booking.id).updated_at) == ("moving abroad", updated_at)
    assert events(booking.id) == [("pending", None), ("cancelled", "moving abroad")]

    rejected = book(settings, slot(11, 0))
    bookings.reject(rejected.id, lifecycle.SLOT_TAKEN)
    assert bookings.cancel(rejected.id) is Outcome.CONFLICT
    assert fresh(rejected.id).status == "rejected"
    assert bookings.cancel("00000000-0000-0000-0000-000000000000") is Outcome.MISSING


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "body"),
        ({"why": "x"}, "why"),
        ({"reason": ""}, "reason"),
        ({"reason": 3}, "reason"),
        ({"reason": "x" * 201}, "reason"),
        ({"reason": "a\u202eb"}, "reason"),
    ],
)
def test_a_bad_cancel_reason_names_its_field(body, field):
    with pytest.raises(InvalidField) as error:
        bookings.cancel_reason(body)
    assert error.value.field == field


def test_a_cancel_reason_defaults_and_is_trimmed():
    assert bookings.cancel_reason(None) == bookings.cancel_reason({}) == CANCELLED_BY_PATIENT
    assert bookings.cancel_reason({"reason": "  feeling better "}) == "feeling better"


def test_a_pending_booking_cancelled_before_the_pipeline_decides_is_never_confirmed_or_rejected(db, settings):
    booking = book(settings, doctor_id=1)
    bookings.cancel(booking.id)
    calendar = AvailabilitySystem(0.0)
    assert lifecycle.process(settings, booking.id, calendar) is lifecycle.STOP
    assert lifecycle.confirm(booking.id, 1, calendar) is lifecycle.STOP
    assert lifecycle.reject(booking.id, lifecycle.SLOT_TAKEN) is lifecycle.STOP
    assert fresh(booking.id).status == "cancelled"
    assert [status for status, _ in events(booking.id)] == ["pending", "cancelled"]


def test_cancel_racing_confirm_ends_cancelled_and_the_first_final_status_wins(db, settings):
    for hour in range(8, 18):
        booking = book(settings, slot(hour, 0), doctor_id=2)
        confirmed, cancelled = at_once(partial(bookings.confirm, booking.id, 2), partial(bookings.cancel, booking.id))
        assert cancelled is Outcome.CHANGED
        statuses = [status for status, _ in events(booking.id)]
        if confirmed is Outcome.CHANGED:  # confirmed first, then cancelled: the slot is free again
            assert statuses == ["pending", "confirmed", "cancelled"]
        else:
            assert (confirmed, statuses) == (Outcome.CONFLICT, ["pending", "cancelled"])
        assert fresh(booking.id).status == "cancelled"
    assert Booking.select().where(Booking.status == "confirmed").count() == 0


def test_a_reschedule_is_a_pending_booking_that_replaces_the_original_when_confirmed(db, settings):
    original = booked(settings, slot(9, 0), doctor_id=1)
    moved = bookings.request_reschedule(settings, original.id, {"slot": slot(15, 30), "doctor_id": 2})
    assert (fresh(moved.id).status, fresh(moved.id).rescheduled_from, fresh(moved.id).patient) == (
        "pending",
        original.id,
        "Ana Pérez",
    )
    assert fresh(original.id).status == "confirmed"  # nothing changes until the new one is confirmed

    assert bookings.confirm(moved.id, 2) is Outcome.CHANGED
    replaced = fresh(original.id)
    assert (replaced.status, replaced.reason, replaced.rescheduled_to) == ("cancelled", RESCHEDULED, moved.id)
    assert events(original.id)[-1] == ("cancelled", RESCHEDULED)
    assert bookings.confirm(moved.id, 2) is Outcome.ALREADY  # redelivered: no second swap
    assert [s for s, _ in events(original.id)] == ["pending", "confirmed", "cancelled"]
    # the original's slot is free again, and a replaced booking cannot be moved or replaced twice
    assert bookings.confirm(book(settings, slot(9, 0), doctor_id=1).id, 1) is Outcome.CHANGED
    with pytest.raises(TransitionRefused):
        bookings.request_reschedule(settings, original.id, {"slot": slot(16, 0)})


def test_a_rejected_or_cancelled_reschedule_leaves_the_original_exactly_as_it_was(db, settings):
    original = booked(settings, slot(9, 0), doctor_id=1)
    before = (fresh(original.id).__data__, events(original.id))
    taken = bookings.request_reschedule(settings, original.id, {"slot": slot(12, 0)})
    bookings.reject(taken.id, lifecycle.NO_DOCTOR_FREE)
    dropped = bookings.request_reschedule(settings, original.id, {"slot": slot(13, 0)})
    bookings.cancel(dropped.id)
    assert (fresh(original.id).__data__, events(original.id)) == before


def test_only_a_pending_or_confirmed_booking_of_ones_own_can_be_rescheduled(db, settings):
    rejected, cancelled = book(settings), book(settings, slot(11, 0))
    bookings.reject(rejected.id, lifecycle.OUTSIDE_HOURS)
    bookings.cancel(cancelled.id)
    for booking in (rejected, cancelled):
        with pytest.raises(TransitionRefused):
            bookings.request_reschedule(settings, booking.id, {"slot": slot(12, 0)})
    mine = bookings.request_booking(settings, {"patient": "Ana", "slot": slot(13, 0)}, owner="k1")
    with pytest.raises(BookingNotFound):
        bookings.request_reschedule(settings, mine.id, {"slot": slot(12, 0)}, owner="k2")
    for body, field in (
        ({"slot": slot(12, 0), "patient": "Eve"}, "patient"),
        ({}, "slot"),
        ({"slot": slot(12, 1)}, "slot"),
    ):
        with pytest.raises(InvalidField) as error:
            bookings.request_reschedule(settings, mine.id, body, owner="k1")
        assert error.value.field == field
    assert Booking.select().count() == 3


def test_two_reschedules_at_once_make_one_and_the_other_names_it(db, settings):
    original = booked(settings)
    results = at_once(
        *(lambda h=h: bookings.request_reschedule(settings, original.id, {"slot": slot(h, 0)}) for h in range(11, 17))
    )
    made = [r for r in results if isinstance(r, Booking)]
    refused = [r for r in results if not isinstance(r, Booking)]
    assert len(made) == 1, results
    assert all(isinstance(r, RescheduleInFlight) and r.pending_id == made[0].id for r in refused), refused
    assert Booking.select().where(Booking.rescheduled_from == original.id).count() == 1
    # once that one is decided (rejected here), another may be asked for
    bookings.reject(made[0].id, lifecycle.NO_DOCTOR_FREE)
    assert bookings.request_reschedule(settings, original.id, {"slot": slot(11, 0)}).rescheduled_from == original.id


def test_reschedule_confirm_racing_a_cancel_of_the_original_cancels_it_once(db, settings):
    for hour in range(8, 14):
        original = booked(settings, slot(hour, 0), doctor_id=1)
        moved = bookings.request_reschedule(settings, original.id, {"slot": slot(hour, 30), "doctor_id": 2})
        confirmed, cancelled = at_once(partial(bookings.confirm, moved.id, 2), partial(bookings.cancel, original.id))
        assert confirmed is Outcome.CHANGED and fresh(moved.id).status == "confirmed"
        replaced = fresh(original.id)
        assert replaced.status == "cancelled"
        assert [s for s, _ in events(original.id)] == ["pending", "confirmed", "cancelled"]
        if cancelled is Outcome.CHANGED:  # the patient's cancel came first: the swap found nothing to cancel
            assert (replaced.reason, replaced.rescheduled_to) == (CANCELLED_BY_PATIENT, None)
        else:
            assert cancelled is Outcome.ALREADY
            assert (replaced.reason, replaced.rescheduled_to) == (RESCHEDULED, moved.id)


def test_a_reschedule_whose_new_slot_is_taken_at_the_same_instant_keeps_the_original(db, settings):
    for hour in range(8, 14):
        original = booked(settings, slot(hour, 0, weekday=1), doctor_id=1)
        target = slot(hour, 30, weekday=1)
        moved = bookings.request_reschedule(settings, original.id, {"slot": target, "doctor_id": 2})
        rival = book(settings, target, doctor_id=2)
        mine, theirs = at_once(partial(bookings.confirm, moved.id, 2), partial(bookings.confirm, rival.id, 2))
        assert sorted([mine.value, theirs.value]) == ["changed", "conflict"]
        if mine is Outcome.CONFLICT:
            assert fresh(original.id).status == "confirmed" and fresh(original.id).rescheduled_to is None
            assert lifecycle.reject(moved.id, lifecycle.SLOT_TAKEN) is lifecycle.STOP  # the relay announces it
            assert fresh(moved.id).status == "rejected" and fresh(original.id).status == "confirmed"
        else:
            assert fresh(original.id).rescheduled_to == moved.id
        assert Booking.select().where(Booking.status == "confirmed", Booking.slot == fresh(moved.id).slot).count() == 1


def test_an_existing_database_gets_the_new_columns_and_indexes(database_url):
    database = store.connect(database_url)
    with database.connection_context():
        fields = {
            name: field
            for name, field in Booking._meta.fields.items()
            if name not in ("rescheduled_from", "rescheduled_to")
        }

        class OldBooking(peewee.Model):
            class Meta:
                table_name = "booking"

        for name, field in fields.items():
            clone = type(field)(**{k: getattr(field, k) for k in ("null", "primary_key") if hasattr(field, k)})
            OldBooking._meta.add_field(name, clone)
        OldBooking.bind(database)
        OldBooking.create_table()
        assert "rescheduled_from" not in {c.name for c in database.get_columns("booking")}

        store.create_schema()
        assert {"rescheduled_from", "rescheduled_to"} <= {c.name for c in database.get_columns("booking")}
        index_columns = {tuple(index.columns) for index in database.get_indexes("booking")}
        assert ("rescheduled_from",) in index_columns
        assert ("doctor_id", "slot") in index_columns
