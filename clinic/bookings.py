"""Bookings as data: accept a request as pending, read it, and confirm or reject it exactly once.

What the pipeline does with a booking (which step follows which) is :mod:`clinic.lifecycle`."""

from __future__ import annotations

import enum
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from clinic.config import Settings
from clinic.errors import BookingNotFound, InvalidField
from clinic.schedule import parse_slot
from clinic.store import Booking, BookingEvent, Compiled, column_values, database, utcnow

PENDING, CONFIRMED, REJECTED = "pending", "confirmed", "rejected"
FINAL_STATUSES = (CONFIRMED, REJECTED)
PATIENT_MAX_LENGTH = 200
REQUEST_FIELDS = ("patient", "slot", "doctor_id")

# Letters of any script, marks and spaces are names; controls, bidi overrides, unassigned and
# private-use code points and lone surrogates are not (Cf is allowed only for ZWJ/ZWNJ).
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_ALLOWED_FORMAT = {"\u200c", "\u200d"}


# The queries every booking runs through the pipeline, compiled once (see store.Compiled).
_NEW_BOOKING = (
    "id",
    "patient",
    "slot",
    "requested_doctor_id",
    "doctor_id",
    "status",
    "owner",
    "created_at",
    "updated_at",
)
_INSERT_BOOKING = Compiled(lambda **row: Booking.insert(**row), names=_NEW_BOOKING)
_INSERT_EVENT = Compiled(
    lambda booking, status, reason, at: BookingEvent.insert(booking=booking, status=status, reason=reason, at=at)
)
_BOOKING_BY_ID = Compiled(lambda id: Booking.select().where(Booking.id == id))
_CONFIRMED_AT = Compiled(
    lambda slot: Booking.select(Booking.doctor_id).where(Booking.slot == slot, Booking.status == CONFIRMED)
)


def doctors_taken_at(slot: datetime) -> set[int]:
    """The doctors who already have a confirmed booking at ``slot``."""
    return {row.doctor_id for row in _CONFIRMED_AT.rows(slot=Booking.slot.db_value(slot))}


_CONFIRM_PENDING = Compiled(
    lambda id, doctor_id, at: Booking.update(status=CONFIRMED, doctor_id=doctor_id, updated_at=at).where(
        Booking.id == id, Booking.status == PENDING
    )
)
_REJECT_PENDING = Compiled(
    lambda id, reason, at: Booking.update(status=REJECTED, reason=reason, updated_at=at).where(
        Booking.id == id, Booking.status == PENDING
    )
)
_STATUS_OF = Compiled(lambda id: Booking.select(Booking.status).where(Booking.id == id))


def load(booking_id: str) -> Booking | None:
    """The booking with that id, or None (the actors' lookup: compiled, no owner check)."""
    found = _BOOKING_BY_ID.rows(id=booking_id)
    return found[0] if found else None


@dataclass(frozen=True)
class Doctor:
    id: int
    name: str


def roster(settings: Settings) -> list[Doctor]:
    """The doctors, with ids that are their 1-based place in ``CLINIC_DOCTORS``."""
    return [Doctor(number, name) for number, name in enumerate(settings.doctors, start=1)]


def request_booking(
    settings: Settings,
    body: Any,
    *,
    owner: str | None = None,
    now: Callable[[], datetime] = utcnow,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Booking:
    """Validate a booking request and store it as pending; raise InvalidField naming what is wrong."""
    if not isinstance(body, Mapping):
        raise InvalidField("body", "must be a JSON object")
    unknown = sorted(str(key) for key in body if key not in REQUEST_FIELDS)
    if unknown:
        raise InvalidField(unknown[0][:64], "is not a field a client may set")
    patient = _patient(body.get("patient"))
    instant = parse_slot(
        body.get("slot"),
        zone=settings.timezone,
        slot_minutes=settings.slot_minutes,
        now=now(),
        horizon_days=settings.horizon_days,
    )
    doctor_id = _doctor_id(settings, body.get("doctor_id"))
    stamp = now()
    booking = Booking(
        id=new_id(),
        patient=patient,
        slot=instant,
        requested_doctor_id=doctor_id,
        doctor_id=doctor_id,
        status=PENDING,
        owner=owner,
        created_at=stamp,
        updated_at=stamp,
    )
    row = column_values(booking, _NEW_BOOKING)
    with database.atomic():
        _INSERT_BOOKING.execute(**row)
        _INSERT_EVENT.execute(booking=booking.id, status=PENDING, reason=None, at=row["created_at"])
    return booking


def get_booking(booking_id: str, *, owner: str | None = None) -> Booking:
    """The booking with that id, if it exists and (when ``owner`` is given) belongs to that owner."""
    try:
        canonical = str(uuid.UUID(booking_id))
    except (ValueError, TypeError, AttributeError):
        raise BookingNotFound(booking_id) from None
    query = Booking.select().where(Booking.id == canonical)
    if owner is not None:
        query = query.where(Booking.owner == owner)
    booking = query.first()
    if booking is None:
        raise BookingNotFound(canonical)
    return booking


def history(booking: Booking) -> list[BookingEvent]:
    return list(booking.events.order_by(BookingEvent.at, BookingEvent.id))


class Outcome(enum.Enum):
    CHANGED = "changed"  # this call moved the booking to the asked status
    ALREADY = "already"  # an earlier delivery already did: nothing changed now
    CONFLICT = "conflict"  # the booking is final in the other status, or the slot was taken
    MISSING = "missing"


def confirm(booking_id: str, doctor_id: int, *, now: Callable[[], datetime] = utcnow) -> Outcome:
    """Confirm a pending booking with a doctor; the database refuses a second confirmed booking
    for the same doctor and slot, and then the answer is CONFLICT."""
    try:
        return _finish(booking_id, CONFIRMED, now(), _CONFIRM_PENDING, doctor_id=doctor_id)
    except peewee.IntegrityError:
        current = Booking.get_or_none(Booking.id == booking_id)
        if current is not None and current.status == CONFIRMED:
            return Outcome.ALREADY
        return Outcome.CONFLICT


def reject(booking_id: str, reason: str, *, now: Callable[[], datetime] = utcnow) -> Outcome:
    """Reject a pending booking with a reason."""
    return _finish(booking_id, REJECTED, now(), _REJECT_PENDING, reason=reason)


def _finish(booking_id: str, status: str, stamp: datetime, update: Compiled, **changes: Any) -> Outcome:
    at = Booking.updated_at.db_value(stamp)
    with database.atomic():
        if update.execute(id=booking_id, at=at, **changes):
            _INSERT_EVENT.execute(booking=booking_id, status=status, reason=changes.get("reason"), at=at)
            return Outcome.CHANGED
        current = _STATUS_OF.rows(id=booking_id)
    if not current:
        return Outcome.MISSING
    return Outcome.ALREADY if current[0].status == status else Outcome.CONFLICT


def claim_stale(older_than: datetime, *, now: datetime, limit: int = 500) -> list[str]:
    """Ids of bookings pending since before ``older_than`` and not swept since then, oldest first;
    they are marked swept at ``now``, so each is re-sent at most once per sweep period."""
    last_touch = peewee.fn.COALESCE(Booking.swept_at, Booking.updated_at)
    with database.atomic():
        ids = [
            row.id
            for row in Booking.select(Booking.id)
            .where(Booking.status == PENDING, last_touch < older_than)
            .order_by(last_touch)
            .limit(limit)
        ]
        if ids:
            Booking.update(swept_at=now).where(Booking.id.in_(ids), Booking.status == PENDING).execute()
    return ids


def _patient(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField("patient", "must be a string")
    if len(value) > PATIENT_MAX_LENGTH:  # as sent (the OpenAPI maxLength), and again once normalised
        raise InvalidField("patient", f"must be at most {PATIENT_MAX_LENGTH} characters")
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise InvalidField("patient", "must not be empty")
    if len(name) > PATIENT_MAX_LENGTH:
        raise InvalidField("patient", f"must be at most {PATIENT_MAX_LENGTH} characters")
    for char in name:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in _ALLOWED_FORMAT:
            raise InvalidField("patient", f"must not contain the character U+{ord(char):04X}")
    return name


def _doctor_id(settings: Settings, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField("doctor_id", "must be a whole number (see GET /doctors)")
    if not 1 <= value <= len(settings.doctors):
        raise InvalidField("doctor_id", "is not a doctor of this clinic (see GET /doctors)")
    return value
