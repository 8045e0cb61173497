"""Bookings as data: accept a request (or a reschedule) as pending, read it, confirm or reject it
exactly once, and cancel it once. Every guard is in the database: a status moves by a conditional
``UPDATE ... WHERE status IN (...)``, and unique indexes refuse a doctor's slot twice and a second
reschedule in flight.

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

from clinic import ids
from clinic.config import Settings
from clinic.errors import BookingNotFound, InvalidField, RescheduleInFlight, TransitionRefused
from clinic.schedule import parse_slot
from clinic.store import Booking, BookingEvent, Commit, Compiled, column_values, database, in_transaction, utcnow

PENDING, CONFIRMED, REJECTED, CANCELLED = "pending", "confirmed", "rejected", "cancelled"
STATUSES = (PENDING, CONFIRMED, REJECTED, CANCELLED)
#: The statuses a notification announces.
FINAL_STATUSES = (CONFIRMED, REJECTED, CANCELLED)
#: A booking in one of these holds its doctor's slot (when it has a doctor) and may be cancelled.
HOLDING = (PENDING, CONFIRMED)
PATIENT_MAX_LENGTH = 200
REASON_MAX_LENGTH = 200
REQUEST_FIELDS = ("patient", "slot", "doctor_id")
RESCHEDULE_FIELDS = ("slot", "doctor_id")
CANCEL_FIELDS = ("reason",)
# Reasons of a cancellation: fixed texts unless the patient gives one.
CANCELLED_BY_PATIENT = "cancelled by the patient"
RESCHEDULED = "rescheduled"

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
    "rescheduled_from",
    "created_at",
    "updated_at",
)
_INSERT_BOOKING = Compiled(lambda **row: Booking.insert(**row), names=_NEW_BOOKING)
_INSERT_EVENT = Compiled(
    lambda booking, status, reason, at, by: BookingEvent.insert(
        booking=booking, status=status, reason=reason, at=at, by=by
    )
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
_CANCEL_HELD = Compiled(
    lambda id, reason, at: Booking.update(status=CANCELLED, reason=reason, updated_at=at).where(
        Booking.id == id, Booking.status.in_(HOLDING)
    )
)
_Original = Booking.alias("original")
# The swap: the booking a just-confirmed reschedule replaces is cancelled in the same
# transaction, if it still holds its slot and was not replaced already (0 rows for any other).
_CANCEL_REPLACED = Compiled(
    lambda new_id, at: Booking.update(status=CANCELLED, reason=RESCHEDULED, rescheduled_to=new_id, updated_at=at).where(
        Booking.id == _Original.select(_Original.rescheduled_from).where(_Original.id == new_id),
        Booking.status.in_(HOLDING),
        Booking.rescheduled_to.is_null(),
    )
)
_REPLACED_BY = Compiled(lambda new_id: Booking.select(Booking.id).where(Booking.rescheduled_to == new_id))
# Locks the original for the reschedule's transaction (a no-op write), if it may be rescheduled.
_HOLD_FOR_RESCHEDULE = Compiled(
    lambda id: Booking.update(rescheduled_to=Booking.rescheduled_to).where(
        Booking.id == id, Booking.status.in_(HOLDING), Booking.rescheduled_to.is_null()
    )
)


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
    by: str | None = None,
    now: Callable[[], datetime] = utcnow,
    new_id: Callable[[], str] = ids.new_id,
    commit: Commit = in_transaction,
) -> Booking:
    """Validate a booking request and store it as pending (``by``: the name of the key that asked);
    raise InvalidField naming what is wrong. ``commit`` runs the insert in a transaction and returns
    once it is committed (the API passes a ``store.GroupCommit``)."""
    _only(body, REQUEST_FIELDS)
    patient = _text("patient", body.get("patient"), PATIENT_MAX_LENGTH)
    booking = _new_booking(settings, body, patient=patient, owner=owner, now=now, new_id=new_id)
    commit(lambda: _insert_pending(booking, by))
    return booking


def request_reschedule(
    settings: Settings,
    booking_id: str,
    body: Any,
    *,
    owner: str | None = None,
    by: str | None = None,
    now: Callable[[], datetime] = utcnow,
    new_id: Callable[[], str] = ids.new_id,
) -> Booking:
    """Store a new pending booking for the same patient that, once confirmed, replaces ``booking_id``.

    BookingNotFound for a booking the owner cannot see, InvalidField for a bad ``slot`` or
    ``doctor_id``, TransitionRefused unless the booking is pending or confirmed and not already
    replaced, RescheduleInFlight while another reschedule of it is pending (a unique index)."""
    original = get_booking(booking_id, owner=owner)
    _only(body, RESCHEDULE_FIELDS)
    booking = _new_booking(
        settings, body, patient=original.patient, owner=original.owner, now=now, new_id=new_id, replaces=original.id
    )
    with database.atomic():
        if not _HOLD_FOR_RESCHEDULE.execute(id=original.id):
            current = get_booking(original.id)
            raise TransitionRefused(original.id, current.status, "only a pending or confirmed booking can be moved")
        try:
            with database.atomic():
                _insert_pending(booking, by)
        except peewee.IntegrityError:
            pending = Booking.get_or_none(Booking.rescheduled_from == original.id, Booking.status == PENDING)
            raise RescheduleInFlight(original.id, pending.id if pending else None) from None
    return booking


def cancel_reason(body: Any) -> str:
    """The reason of a cancel request ``{"reason"?}`` (no body: the default reason)."""
    if body is None:
        return CANCELLED_BY_PATIENT
    _only(body, CANCEL_FIELDS)
    if "reason" not in body:
        return CANCELLED_BY_PATIENT
    return _text("reason", body["reason"], REASON_MAX_LENGTH)


def cancel(
    booking_id: str,
    reason: str = CANCELLED_BY_PATIENT,
    *,
    by: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Outcome:
    """Cancel a pending or confirmed booking (a confirmed one frees its slot at once). CHANGED
    when this call did it, ALREADY when it was cancelled before, CONFLICT when it was rejected."""
    return _finish(booking_id, CANCELLED, now(), _CANCEL_HELD, by=by, reason=reason)


def cancel_request(
    booking_id: str, body: Any, *, owner: str | None = None, by: str | None = None
) -> tuple[Booking, Outcome]:
    """Cancel the owner's booking as ``POST /booking/{id}/cancel`` asks: the booking as it now is,
    and CHANGED (this request cancelled it: announce it) or ALREADY (cancelled before: nothing to
    do). BookingNotFound for one the owner cannot see, TransitionRefused for a rejected one."""
    booking = get_booking(booking_id, owner=owner)
    outcome = cancel(booking.id, cancel_reason(body), by=by)
    if outcome is Outcome.CONFLICT:
        raise TransitionRefused(booking.id, REJECTED, "a rejected booking holds nothing to cancel")
    return get_booking(booking.id), outcome


def _new_booking(
    settings: Settings,
    body: Mapping,
    *,
    patient: str,
    owner: str | None,
    now: Callable[[], datetime],
    new_id: Callable[[], str],
    replaces: str | None = None,
) -> Booking:
    instant = parse_slot(
        body.get("slot"),
        zone=settings.timezone,
        slot_minutes=settings.slot_minutes,
        now=now(),
        horizon_days=settings.horizon_days,
    )
    doctor_id = _doctor_id(settings, body.get("doctor_id"))
    stamp = now()
    return Booking(
        id=new_id(),
        patient=patient,
        slot=instant,
        requested_doctor_id=doctor_id,
        doctor_id=doctor_id,
        status=PENDING,
        owner=owner,
        rescheduled_from=replaces,
        created_at=stamp,
        updated_at=stamp,
    )


def _insert_pending(booking: Booking, by: str | None) -> None:
    row = column_values(booking, _NEW_BOOKING)
    _INSERT_BOOKING.execute(**row)
    _INSERT_EVENT.execute(booking=booking.id, status=PENDING, reason=None, at=row["created_at"], by=by)


_OWNED_BOOKING = Compiled(lambda id, owner: Booking.select().where(Booking.id == id, Booking.owner == owner))
_HISTORY = Compiled(
    lambda booking: (
        BookingEvent.select().where(BookingEvent.booking == booking).order_by(BookingEvent.at, BookingEvent.id)
    )
)


def get_booking(booking_id: str, *, owner: str | None = None) -> Booking:
    """The booking with that id, if it exists and (when ``owner`` is given) belongs to that owner."""
    try:
        canonical = str(uuid.UUID(booking_id))
    except (ValueError, TypeError, AttributeError):
        raise BookingNotFound(booking_id) from None
    found = _BOOKING_BY_ID.rows(id=canonical) if owner is None else _OWNED_BOOKING.rows(id=canonical, owner=owner)
    if not found:
        raise BookingNotFound(canonical)
    return found[0]


_STATUSES_OF = Compiled(lambda id: BookingEvent.select(BookingEvent.status).where(BookingEvent.booking == id))


def statuses_of(booking_id: str) -> set[str]:
    """Every status the booking has been in (its history, one entry per status)."""
    return {row.status for row in _STATUSES_OF.rows(id=booking_id)}


def history(booking: Booking) -> list[BookingEvent]:
    """The booking's status changes, oldest first (compiled: every GET of a booking reads them)."""
    return _HISTORY.rows(booking=booking.id)


class Outcome(enum.Enum):
    CHANGED = "changed"  # this call moved the booking to the asked status
    ALREADY = "already"  # an earlier delivery already did: nothing changed now
    CONFLICT = "conflict"  # the booking is final in the other status, or the slot was taken
    MISSING = "missing"


def confirm(
    booking_id: str,
    doctor_id: int,
    *,
    now: Callable[[], datetime] = utcnow,
    commit: Commit = in_transaction,
) -> Outcome:
    """Confirm a pending booking with a doctor; the database refuses a second confirmed booking
    for the same doctor and slot, and then the answer is CONFLICT.

    A reschedule's confirmation cancels the booking it replaces (reason ``rescheduled``) in the
    same transaction, when that one still holds its slot: both happen, or neither. ``commit``
    runs the writes in a transaction (a worker passes a ``store.GroupCommit``)."""
    try:
        return _finish(
            booking_id, CONFIRMED, now(), _CONFIRM_PENDING, commit=commit, then=_cancel_replaced, doctor_id=doctor_id
        )
    except peewee.IntegrityError:
        current = Booking.get_or_none(Booking.id == booking_id)
        if current is not None and current.status == CONFIRMED:
            return Outcome.ALREADY
        return Outcome.CONFLICT


def reject(
    booking_id: str,
    reason: str,
    *,
    now: Callable[[], datetime] = utcnow,
    commit: Commit = in_transaction,
) -> Outcome:
    """Reject a pending booking with a reason."""
    return _finish(booking_id, REJECTED, now(), _REJECT_PENDING, commit=commit, reason=reason)


def _cancel_replaced(new_id: str, at: Any) -> None:
    if _CANCEL_REPLACED.execute(new_id=new_id, at=at):
        for original in _REPLACED_BY.rows(new_id=new_id):
            _INSERT_EVENT.execute(booking=original.id, status=CANCELLED, reason=RESCHEDULED, at=at, by=None)


def _finish(
    booking_id: str,
    status: str,
    stamp: datetime,
    update: Compiled,
    *,
    commit: Commit = in_transaction,
    then: Callable[[str, Any], None] | None = None,
    by: str | None = None,
    **changes: Any,
) -> Outcome:
    at = Booking.updated_at.db_value(stamp)

    def write() -> Outcome:
        if update.execute(id=booking_id, at=at, **changes):
            _INSERT_EVENT.execute(booking=booking_id, status=status, reason=changes.get("reason"), at=at, by=by)
            if then is not None:
                then(booking_id, at)
            return Outcome.CHANGED
        current = _STATUS_OF.rows(id=booking_id)
        if not current:
            return Outcome.MISSING
        return Outcome.ALREADY if current[0].status == status else Outcome.CONFLICT

    return commit(write)


class Committing:
    """This module as a pipeline's ``lifecycle.BookingStore``, its writes (confirm, reject) run by
    ``commit``: a worker process passes a ``store.GroupCommit``, so the confirmations its threads
    make at once share one transaction and one fsync, as new bookings do in the API."""

    def __init__(self, commit: Commit) -> None:
        self.commit = commit

    load = staticmethod(load)
    statuses_of = staticmethod(statuses_of)
    doctors_taken_at = staticmethod(doctors_taken_at)

    def confirm(self, booking_id: str, doctor_id: int) -> Outcome:
        return confirm(booking_id, doctor_id, commit=self.commit)

    def reject(self, booking_id: str, reason: str) -> Outcome:
        return reject(booking_id, reason, commit=self.commit)


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


def _only(body: Any, fields: tuple[str, ...]) -> None:
    if not isinstance(body, Mapping):
        raise InvalidField("body", "must be a JSON object")
    unknown = sorted(str(key) for key in body if key not in fields)
    if unknown:
        raise InvalidField(unknown[0][:64], "is not a field a client may set")


def _text(field: str, value: Any, max_length: int) -> str:
    """A name or a reason: a string of 1 to ``max_length`` characters after NFC and trimming,
    without control, format, private-use or unassigned characters."""
    if not isinstance(value, str):
        raise InvalidField(field, "must be a string")
    if len(value) > max_length:  # as sent (the OpenAPI maxLength), and again once normalised
        raise InvalidField(field, f"must be at most {max_length} characters")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidField(field, "must not be empty")
    if len(text) > max_length:
        raise InvalidField(field, f"must be at most {max_length} characters")
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES and char not in _ALLOWED_FORMAT:
            raise InvalidField(field, f"must not contain the character U+{ord(char):04X}")
    return text


def _doctor_id(settings: Settings, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField("doctor_id", "must be a whole number (see GET /doctors)")
    if not 1 <= value <= len(settings.doctors):
        raise InvalidField("doctor_id", "is not a doctor of this clinic (see GET /doctors)")
    return value


def oldest_pending() -> Booking | None:
    """The booking pending longest (by when it was stored), or None: how far behind the pipeline is."""
    return (
        Booking.select(Booking.id, Booking.created_at)
        .where(Booking.status == PENDING)
        .order_by(Booking.created_at)
        .first()
    )
