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
from clinic.bookings import CANCELLED, CONFIRMED, FINAL_STATUSES, PENDING, Outcome
from clinic.config import CONFIRM, NOTIFY, PROCESS, REJECT, WEBHOOKS, Settings
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

    def statuses_of(self, booking_id: str) -> set[str]: ...

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
    """A booking (or a reschedule) was just stored as pending: the processor takes it from here."""
    return Step(PROCESS, (booking_id,))


def announced(status: str, booking: Booking) -> Step:
    """A committed status change, as the relay hands it on: a final status goes to the notifier.
    The cancellation of a booking a reschedule replaced is announced by the notification of that
    reschedule's confirmation (see :func:`notifications`), so subscribers hear both, in order."""
    if status not in FINAL_STATUSES:
        return STOP
    if status == CANCELLED and booking.rescheduled_to is not None:
        return STOP
    return Step(NOTIFY, (booking.id, status))


def deliver(delivery_id: int) -> Step:
    """A webhook delivery was stored: the webhooks worker sends it."""
    return Step(WEBHOOKS, (delivery_id,))


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
    """Give the slot to the booking, unless another booking got it first; a reschedule's
    confirmation also cancels the booking it replaces, in the same transaction (``books.confirm``).
    A booking cancelled meanwhile stays cancelled: the first final status wins. The confirmation
    is announced by the relay, from its event, like every status change."""
    calendar.await_confirmation()
    outcome = books.confirm(booking_id, doctor_id)
    if outcome is Outcome.CONFLICT:
        booking = books.load(booking_id)
        if booking is None or booking.status != PENDING:
            return STOP  # cancelled (or decided) while it waited: nothing more to do
        if booking.requested_doctor_id is None:
            return Step(PROCESS, (booking_id,))  # another booking took this doctor; any will do
        return Step(REJECT, (booking_id, SLOT_TAKEN))
    return STOP


def reject(booking_id: str, reason: str, *, books: BookingStore = bookings) -> Step:
    """Record why a booking cannot be had; the relay announces it, from its event."""
    books.reject(booking_id, reason)
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


def notifications(
    settings: Settings, booking_id: str, status: str | None = None, *, books: BookingStore = bookings
) -> list[Notification]:
    """What the notifier publishes for one step: the booking's ``status`` (its current one when
    not given, as older messages ask), and, for a reschedule's confirmation, then the cancellation
    of the booking it replaced. Each keeps ``message_id = {booking_id}.{status}``, so a
    notification delayed past a later change still announces the status it was sent for."""
    notice = notification(settings, booking_id, status, books=books)
    if notice is None:
        return []
    notices = [notice]
    replaced = notice.body["rescheduled_from"]
    if notice.routing_key == CONFIRMED and replaced is not None:
        original = books.load(replaced)
        if original is not None and original.rescheduled_to == booking_id:
            notices.append(_notification(settings, original, CANCELLED))
    return notices


def notification(
    settings: Settings, booking_id: str, status: str | None = None, *, books: BookingStore = bookings
) -> Notification | None:
    """The announcement of one status of a booking (by default its current one), or None while
    it has none to announce (pending, unknown, or never in that status)."""
    booking = books.load(booking_id)
    if booking is None:
        return None
    status = status or booking.status
    if status not in FINAL_STATUSES:
        return None
    if status != booking.status and status not in books.statuses_of(booking_id):
        return None
    return _notification(settings, booking, status)


def _notification(settings: Settings, booking: Booking, status: str) -> Notification:
    names = {doctor.id: doctor.name for doctor in bookings.roster(settings)}
    body = {
        "booking_id": booking.id,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "status": status,
        "doctor_id": booking.doctor_id,
        "doctor": names.get(booking.doctor_id) if status == CONFIRMED else None,
        "reason": booking.reason if status == booking.status else None,
        "rescheduled_from": booking.rescheduled_from,
        "rescheduled_to": booking.rescheduled_to,
    }
    return Notification(f"{booking.id}.{status}", status, body)
