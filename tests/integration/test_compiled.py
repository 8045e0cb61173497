"""Compiled queries read rows exactly as Peewee's own queries do, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

from clinic import bookings
from clinic.store import Booking, BookingEvent
from clinic.store.compiled import Compiled
from clinic.store.models import UTCDateTimeField
from tests.support import slot

_ALL = Compiled(lambda id: Booking.select().where(Booking.id == id))
_SOME = Compiled(lambda id: Booking.select(Booking.status, Booking.slot).where(Booking.id == id))
_HISTORY = Compiled(lambda id: BookingEvent.select().where(BookingEvent.booking == id).order_by(BookingEvent.id))
_COUNTED = Compiled(
    lambda status: (
        Booking.select(Booking.status, peewee.fn.COUNT(Booking.id).alias("n"))
        .where(Booking.status == status)
        .group_by(Booking.status)
    )
)


def test_compiled_rows_are_the_instances_peewee_builds(db, settings):
    first = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10), "doctor_id": 2})
    bookings.request_booking(settings, {"patient": "Luis Gómez", "slot": slot(11)})
    assert bookings.cancel(first.id) is bookings.Outcome.CHANGED

    for compiled, plain in (
        (_ALL, Booking.select().where(Booking.id == first.id)),
        (_SOME, Booking.select(Booking.status, Booking.slot).where(Booking.id == first.id)),
        (_HISTORY, BookingEvent.select().where(BookingEvent.booking == first.id).order_by(BookingEvent.id)),
    ):
        rows, expected = compiled.rows(id=first.id), list(plain)
        assert [row.__data__ for row in rows] == [row.__data__ for row in expected]
        assert all(type(row) is type(expected[0]) and not row.dirty_fields for row in rows)
    (booking,) = _ALL.rows(id=first.id)
    assert booking.slot == first.slot and booking.slot.tzinfo is not None
    assert booking.status == "cancelled" and booking.requested_doctor_id == 2
    (partial,) = _SOME.rows(id=first.id)
    assert "patient" not in partial.__data__ and partial.patient is None  # a column not read stays unset
    # Anything but plain columns of the model is read the way Peewee reads it.
    (counted,) = _COUNTED.rows(status="pending")
    assert (counted.status, counted.n) == ("pending", 1)


def test_stored_datetimes_are_read_back_aware_in_utc():
    field = UTCDateTimeField()
    for text in ("2027-01-04 09:30:00", "2027-01-04 09:30:00.250000", "2027-01-04"):
        read = field.python_value(text)
        assert read.tzinfo is UTC
        assert read.replace(tzinfo=None) == peewee.DateTimeField().python_value(text)  # as Peewee reads it
    assert field.python_value(datetime(2027, 1, 4, 9, 30)) == datetime(2027, 1, 4, 9, 30, tzinfo=UTC)
    assert field.python_value(None) is None
    assert field.python_value("next tuesday") == "next tuesday"  # not a date: as Peewee hands it back
