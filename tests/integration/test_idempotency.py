"""Idempotent booking requests on SQLite and PostgreSQL: one key, one booking, ever."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from clinic import idempotency, store
from clinic.errors import IdempotencyConflict, IdempotencyKeyReused, InvalidField, InvalidHeader
from clinic.store import Booking, IdempotencyRecord, utcnow
from tests.support import slot


def respond(booking):
    return 202, {"booking_id": booking.id, "status": booking.status}


def once(settings, body=None, *, key="k-1", owner=None, now=utcnow):
    body = body or {"patient": "Ana Pérez", "slot": slot(10, 0)}
    return idempotency.request_booking_once(settings, body, key=key, owner=owner, respond=respond, now=now)


def test_the_same_key_and_body_answers_the_first_booking_again(db, settings):
    body = {"patient": "Ana Pérez", "slot": slot(10, 0)}
    first = once(settings, body)
    again = once(settings, dict(reversed(list(body.items()))))  # same JSON value, other key order
    assert not first.replayed and again.replayed
    assert (again.booking_id, again.status, again.body) == (first.booking_id, 202, first.body)
    assert Booking.select().count() == 1


def test_the_same_key_with_another_body_is_refused_and_books_nothing(db, settings):
    once(settings)
    with pytest.raises(IdempotencyKeyReused):
        once(settings, {"patient": "Ana Pérez", "slot": slot(11, 0)})
    assert Booking.select().count() == 1


def test_keys_belong_to_their_owner(db, settings):
    assert once(settings, owner="alice").booking_id != once(settings, owner="bob").booking_id
    assert once(settings, owner=None).booking_id != once(settings, owner="alice").booking_id
    assert Booking.select().count() == 3


def test_an_invalid_request_stores_no_key(db, settings):
    with pytest.raises(InvalidField):
        once(settings, {"patient": "", "slot": slot(10, 0)})
    assert IdempotencyRecord.select().count() == 0
    assert not once(settings).replayed


def test_a_key_answers_for_24_hours_and_then_books_again(db, settings):
    start = utcnow()
    first = once(settings, now=lambda: start)
    assert once(settings, now=lambda: start + timedelta(hours=23, minutes=59)).replayed
    later = once(settings, now=lambda: start + timedelta(hours=24, seconds=1))
    assert not later.replayed and later.booking_id != first.booking_id
    assert IdempotencyRecord.select().count() == 1


def test_expired_records_are_deleted(db, settings):
    start = utcnow()
    once(settings, key="old", now=lambda: start - timedelta(hours=25))
    once(settings, key="new", now=lambda: start)
    assert idempotency.delete_expired(start) == 1
    assert [r.key for r in IdempotencyRecord.select()] == ["new"]
    assert Booking.select().count() == 2  # the bookings stay; only the keys expire


def test_concurrent_duplicates_make_one_booking(db, settings, database_url):
    answers, errors, barrier = [], [], threading.Barrier(8)

    def request():
        with store.database.connection_context():
            barrier.wait()
            try:
                answers.append(once(settings, key="burst"))
            except IdempotencyConflict as error:
                errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) + len(errors) == 8
    assert len({answer.booking_id for answer in answers}) == 1
    assert sum(not answer.replayed for answer in answers) == 1
    with store.database.connection_context():
        assert Booking.select().count() == 1


@pytest.mark.parametrize("value", ["", "k" * 256, "a b", "caf\u00e9", "tab\there", "nul\x00"])
def test_an_unusable_key_header_is_refused_naming_the_header(value):
    with pytest.raises(InvalidHeader) as error:
        idempotency.check_key(value)
    assert error.value.header == "Idempotency-Key"


def test_a_usable_key_header_is_kept_as_it_is():
    assert idempotency.check_key("8e03978e-40d5-43e8-bc93-6894a57f9324") == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert idempotency.check_key("k" * 255) == "k" * 255
    assert idempotency.check_key(None) is None
