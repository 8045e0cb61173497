"""The booking rules against a real database: SQLite file and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from clinic import bookings, lifecycle, store
from clinic.bookings import Outcome
from clinic.errors import BookingNotFound, InvalidField
from clinic.lifecycle import Action, Decision, decide
from clinic.store import Booking, BookingEvent
from tests.support import slot


def book(settings, **fields):
    body = {"patient": "Ana Pérez", "slot": slot(10, 0), **fields}
    return bookings.request_booking(settings, body)


def events(booking_id):
    return [e.status for e in BookingEvent.select().where(BookingEvent.booking == booking_id).order_by(BookingEvent.id)]


def test_a_request_is_stored_pending_with_its_first_history_entry(db, settings):
    booking = book(settings, doctor_id=2)
    stored = Booking.get_by_id(booking.id)
    assert (stored.status, stored.patient, stored.requested_doctor_id) == ("pending", "Ana Pérez", 2)
    assert events(booking.id) == ["pending"]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"patient": None}, "patient"),
        ({"patient": 42}, "patient"),
        ({"patient": "   "}, "patient"),
        ({"patient": "x" * 201}, "patient"),
        ({"patient": "e\u0301" * 101}, "patient"),  # 202 code points as sent, 101 once composed
        ({"patient": "Ana\x00Pérez"}, "patient"),
        ({"patient": "Ana\nPérez"}, "patient"),
        ({"patient": "Ana \u202ezereP"}, "patient"),  # right-to-left override
        ({"patient": "Ana \ud800"}, "patient"),  # lone surrogate
        ({"doctor_id": "1"}, "doctor_id"),
        ({"doctor_id": True}, "doctor_id"),
        ({"doctor_id": 1.0}, "doctor_id"),
        ({"doctor_id": 3}, "doctor_id"),
        ({"doctor_id": 0}, "doctor_id"),
        ({"status": "confirmed"}, "status"),
        ({"reason": "vip"}, "reason"),
    ],
)
def test_a_bad_request_names_its_field_and_stores_nothing(db, settings, fields, field):
    with pytest.raises(InvalidField) as error:
        book(settings, **fields)
    assert error.value.field == field
    assert Booking.select().count() == 0
    assert "Ana" not in str(error.value)


def test_names_in_any_script_are_kept_normalised(db, settings):
    booking = book(settings, patient="  Zoë Ó Briain-Nāgarāja 李小龍  ")
    assert Booking.get_by_id(booking.id).patient == "Zoë Ó Briain-Nāgarāja 李小龍"
    composed = book(settings, patient="Zoe\u0308", slot=slot(11, 0))
    assert Booking.get_by_id(composed.id).patient == "Zoë"


def test_an_unknown_or_malformed_id_is_not_found(db, settings):
    for booking_id in ("nope", "00000000-0000-0000-0000-000000000000", "'; DROP TABLE booking; --"):
        with pytest.raises(BookingNotFound):
            bookings.get_booking(booking_id)


def test_a_free_slot_goes_to_the_first_free_doctor(db, settings):
    first, second, third = (book(settings) for _ in range(3))
    decision = decide(settings, first.id)
    assert decision == Decision(Action.CONFIRM, doctor_id=1, slot=first.slot)
    assert bookings.confirm(first.id, 1) is Outcome.CHANGED
    assert decide(settings, second.id).doctor_id == 2
    assert bookings.confirm(second.id, 2) is Outcome.CHANGED
    assert decide(settings, third.id) == Decision(Action.REJECT, reason=lifecycle.NO_DOCTOR_FREE)


def test_a_requested_doctor_who_is_taken_means_rejection(db, settings):
    first, second = book(settings, doctor_id=2), book(settings, doctor_id=2)
    bookings.confirm(first.id, 2)
    assert decide(settings, second.id) == Decision(Action.REJECT, reason=lifecycle.SLOT_TAKEN)


def test_a_slot_outside_the_hours_is_rejected(db, settings):
    evening = book(settings, slot=slot(18, 0))
    sunday = book(settings, slot=slot(10, 0, weekday=6))
    for booking in (evening, sunday):
        assert decide(settings, booking.id).reason == lifecycle.OUTSIDE_HOURS


def test_a_decided_booking_is_left_alone(db, settings):
    booking = book(settings)
    bookings.reject(booking.id, lifecycle.OUTSIDE_HOURS)
    assert decide(settings, booking.id).action is Action.SKIP
    assert decide(settings, "00000000-0000-0000-0000-000000000000").action is Action.SKIP


def test_the_database_refuses_a_second_confirmation_of_a_doctors_slot(db, settings):
    first, second = book(settings), book(settings)
    assert bookings.confirm(first.id, 1) is Outcome.CHANGED
    assert bookings.confirm(second.id, 1) is Outcome.CONFLICT
    assert Booking.get_by_id(second.id).status == "pending"
    assert events(second.id) == ["pending"]


def test_finishing_twice_changes_nothing_the_second_time(db, settings):
    booking = book(settings)
    assert bookings.confirm(booking.id, 1) is Outcome.CHANGED
    updated_at = Booking.get_by_id(booking.id).updated_at
    assert bookings.confirm(booking.id, 1) is Outcome.ALREADY
    assert bookings.reject(booking.id, lifecycle.SLOT_TAKEN) is Outcome.CONFLICT
    assert events(booking.id) == ["pending", "confirmed"]
    assert Booking.get_by_id(booking.id).updated_at == updated_at

    rejected = book(settings, slot=slot(11, 0))
    assert bookings.reject(rejected.id, lifecycle.OUTSIDE_HOURS) is Outcome.CHANGED
    assert bookings.reject(rejected.id, lifecycle.OUTSIDE_HOURS) is Outcome.ALREADY
    assert bookings.confirm(rejected.id, 1) is Outcome.CONFLICT
    assert events(rejected.id) == ["pending", "rejected"]
    assert bookings.reject("00000000-0000-0000-0000-000000000000", "x") is Outcome.MISSING


def test_two_patients_cannot_confirm_the_same_slot_even_at_the_same_instant(db, settings, database_url):
    contenders = [book(settings) for _ in range(12)]
    start = threading.Barrier(len(contenders))
    outcomes = []

    def confirm(booking_id):
        with store.database.connection_context():
            start.wait()
            outcomes.append(bookings.confirm(booking_id, 1))

    threads = [threading.Thread(target=confirm, args=(b.id,)) for b in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) == ["changed"] + ["conflict"] * 11
    assert Booking.select().where(Booking.status == "confirmed").count() == 1


def test_the_sweeper_claims_a_stale_booking_once_per_period(db, settings):
    stale, fresh = book(settings), book(settings)
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    Booking.update(updated_at=an_hour_ago).where(Booking.id == stale.id).execute()
    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(minutes=1)
    assert bookings.claim_stale(cutoff, now=now) == [stale.id]
    assert bookings.claim_stale(cutoff, now=now) == []
    later = now + timedelta(minutes=2)
    assert set(bookings.claim_stale(later - timedelta(minutes=1), now=later)) == {stale.id, fresh.id}


def test_the_schema_can_be_created_again_without_harm(db, settings):
    booking = book(settings)
    store.create_schema()
    store.create_schema()
    assert Booking.get_by_id(booking.id).status == "pending"


def test_processes_starting_together_create_the_schema_without_a_deadlock(database_url):
    """Every API process creates the schema as it starts; several start at once (``--processes``,
    replicas). On PostgreSQL two trigger installs could deadlock each other; on a new SQLite file
    a connection could find it locked while another switched it to WAL (one process in thirty)."""
    script = "import sys; from clinic import store; store.connect(sys.argv[1]); store.create_schema()"
    for attempt in range(4):  # either needs an unlucky interleaving: give it a few chances
        url = database_url.replace(".db", f"-{attempt}.db") if database_url.startswith("sqlite") else database_url
        starts = [
            subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True) for _ in range(12)
        ]
        failures = [process.stderr.read().strip().splitlines()[-1:] for process in starts if process.wait(60)]
        assert failures == []
