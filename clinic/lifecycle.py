"""The booking's lifecycle: every rule of the pipeline, one function per step.

Each step reads and changes bookings through a :class:`BookingStore` (the database, by way of
:mod:`clinic.bookings`, unless a test passes a fake) and returns a :class:`Step`: which stage
receives the booking next, with which arguments, or stop. The actors only map a step to a
message, so the whole lifecycle can be read, and tested, here without a broker. Steps are
idempotent: RabbitMQ delivers at least once, so running one twice with the same arguments
changes nothing the second time, and returns a step that is as harmless.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from clinic import bookings
from clinic.availability import AvailabilitySystem
from clinic.bookings import FINAL_STATUSES, PENDING, Outcome
from clinic.config import CONFIRM, NOTIFY, PROCESS, REJECT, Settings
from clinic.errors import DoctorUnavailable, qualified_name
from clinic.store import Booking

logger = logging.getLogger(__name__)

#: Every step is retried at most this many times after its first attempt (Dramatiq's Retries).
MAX_RETRIES = 3

# Reasons are shown to patients and travel in notifications: fixed texts, never personal data.
OUTSIDE_HOURS = "outside the clinic's hours"
SLOT_TAKEN = "slot already taken"
NO_DOCTOR_FREE = "no doctor free at that slot"
DOCTOR_UNAVAILABLE = f"doctor unavailable after {MAX_RETRIES} retries"


class BookingStore(Protocol):
    """What the steps need of the bookings; :mod:`clinic.bookings` is the real one."""

    def load(self, booking_id: str) -> Booking | None: ...

    def doctors_taken_at(self, slot: datetime) -> set[int]: ...

    def confirm(self, booking_id: str, doctor_id: int) -> Outcome: ...

    def reject(self, booking_id: str, reason: str) -> Outcome: ...


@dataclass(frozen=True)
class Step:
    """What happens next: send ``args`` to the actor of ``stage``, or, with no stage, stop."""

    stage: str | None
    args: tuple = ()


STOP = Step(None)


def accepted(booking_id: str) -> Step:
    """A booking was just stored as pending: the processor takes it from here."""
    return Step(PROCESS, (booking_id,))


class Action(enum.Enum):
    CONFIRM = "confirm"
    REJECT = "reject"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    """What the processor should do with a booking, and with which doctor or why not."""

    action: Action
    doctor_id: int | None = None
    reason: str | None = None
    slot: datetime | None = None  # the booking's slot, for the doctor's calendar


def decide(settings: Settings, booking_id: str, *, books: BookingStore = bookings) -> Decision:
    """Decide a pending booking from the clinic's own data: hours, then the doctors' free slots."""
    booking = books.load(booking_id)
    if booking is None or booking.status != PENDING:
        return Decision(Action.SKIP)
    local_start = booking.slot.astimezone(settings.timezone)
    if not settings.hours.covers(local_start, settings.slot_minutes):
        return Decision(Action.REJECT, reason=OUTSIDE_HOURS)
    if booking.requested_doctor_id is not None:
        candidates = [booking.requested_doctor_id]
    else:
        candidates = [doctor.id for doctor in bookings.roster(settings)]
    taken = books.doctors_taken_at(booking.slot)
    for doctor_id in candidates:
        if doctor_id not in taken:
            return Decision(Action.CONFIRM, doctor_id=doctor_id, slot=booking.slot)
    reason = SLOT_TAKEN if booking.requested_doctor_id is not None else NO_DOCTOR_FREE
    return Decision(Action.REJECT, reason=reason)


def process(
    settings: Settings, booking_id: str, calendar: AvailabilitySystem, *, books: BookingStore = bookings
) -> Step:
    """Decide a pending booking, and ask the chosen doctor's calendar before confirming.

    Raises DoctorUnavailable when the calendar does not answer: the step is then retried with
    backoff, and after the last retry :func:`retries_exhausted` decides."""
    decision = decide(settings, booking_id, books=books)
    if decision.action is Action.SKIP:
        return STOP
    if decision.action is Action.REJECT:
        return Step(REJECT, (booking_id, decision.reason))
    calendar.check(decision.doctor_id, decision.slot)
    return Step(CONFIRM, (booking_id, decision.doctor_id))


def confirm(booking_id: str, doctor_id: int, calendar: AvailabilitySystem, *, books: BookingStore = bookings) -> Step:
    """Give the slot to the booking, unless another booking got it first."""
    calendar.await_confirmation()
    outcome = books.confirm(booking_id, doctor_id)
    if outcome is Outcome.CONFLICT:
        if _may_choose_another_doctor(books.load(booking_id)):
            return Step(PROCESS, (booking_id,))  # another booking took this doctor; any will do
        return Step(REJECT, (booking_id, SLOT_TAKEN))
    if outcome in (Outcome.CHANGED, Outcome.ALREADY):
        # ALREADY: an earlier delivery confirmed but may have died before it sent this on.
        return Step(NOTIFY, (booking_id,))
    return STOP


def reject(booking_id: str, reason: str, *, books: BookingStore = bookings) -> Step:
    """Record why a booking cannot be had, then tell the subscribers."""
    outcome = books.reject(booking_id, reason)
    if outcome in (Outcome.CHANGED, Outcome.ALREADY):
        return Step(NOTIFY, (booking_id,))
    return STOP


def retries_exhausted(booking_id: str, error_type: str) -> Step:
    """The processor failed ``MAX_RETRIES + 1`` times (its message is already in the dead-letter
    queue). Only a calendar that never answered rejects the booking; any other failure (the
    database was down, say) leaves it pending, for the sweeper to send again later."""
    if error_type != qualified_name(DoctorUnavailable):
        logger.error("Processing booking %s failed for good (%s); left pending", booking_id, error_type)
        return STOP
    return Step(REJECT, (booking_id, DOCTOR_UNAVAILABLE))


@dataclass(frozen=True)
class Notification:
    """One booking outcome as subscribers receive it. ``message_id`` is the same on every
    re-publication of the same outcome, so a subscriber can drop duplicates."""

    message_id: str
    routing_key: str
    body: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def notification(settings: Settings, booking_id: str, *, books: BookingStore = bookings) -> Notification | None:
    """What the notifier publishes for a booking: its final outcome, or None while it has none."""
    booking = books.load(booking_id)
    if booking is None or booking.status not in FINAL_STATUSES:
        return None
    names = {doctor.id: doctor.name for doctor in bookings.roster(settings)}
    body = {
        "booking_id": booking.id,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "status": booking.status,
        "doctor_id": booking.doctor_id,
        "doctor": names.get(booking.doctor_id) if booking.status == bookings.CONFIRMED else None,
        "reason": booking.reason,
    }
    return Notification(f"{booking.id}.{booking.status}", booking.status, body)


def _may_choose_another_doctor(booking: Booking | None) -> bool:
    """True for a pending booking that asked for no doctor in particular."""
    return booking is not None and booking.status == PENDING and booking.requested_doctor_id is None
