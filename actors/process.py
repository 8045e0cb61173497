"""The processor: decides a pending booking and asks the doctor's calendar."""

from __future__ import annotations

import dramatiq

from actors.confirm import confirm_booking
from actors.reject import reject_booking
from actors.runtime import availability, settings
from clinic import bookings
from clinic.bookings import Action
from clinic.errors import DoctorUnavailable


@dramatiq.actor(
    actor_name="process_booking",
    queue_name=settings.queue("process"),
    on_retry_exhausted="reject_unanswered_booking",
)
def process_booking(booking_id: str) -> None:
    decision = bookings.decide(settings, booking_id)
    if decision.action is Action.SKIP:
        return
    if decision.action is Action.REJECT:
        reject_booking.send(booking_id, decision.reason)
        return
    try:
        availability.check(decision.doctor_id, decision.slot)
    except DoctorUnavailable as unanswered:
        # A transient failure, expected now and then: Retry makes Dramatiq's Retries middleware
        # schedule the next attempt with backoff, without logging a traceback each time.
        raise dramatiq.Retry(str(unanswered)) from unanswered
    confirm_booking.send(booking_id, decision.doctor_id)
