"""The rejector: records why a booking cannot be had."""

from __future__ import annotations

import logging

import dramatiq

from actors.notify import notify_booking
from actors.runtime import settings
from clinic import bookings
from clinic.bookings import Outcome

logger = logging.getLogger(__name__)


@dramatiq.actor(actor_name="reject_booking", queue_name=settings.queue("reject"))
def reject_booking(booking_id: str, reason: str) -> None:
    outcome = bookings.reject(booking_id, reason)
    if outcome in (Outcome.CHANGED, Outcome.ALREADY):
        notify_booking.send(booking_id)


@dramatiq.actor(actor_name="reject_unanswered_booking", queue_name=settings.queue("reject"))
def reject_unanswered_booking(message: dict, retries: dict) -> None:
    """Retries' ``on_retry_exhausted`` target for the processor. The dead message itself stays in
    ``{ns}.process.XQ``; the booking is rejected only when the doctor's calendar never answered.
    Any other failure (say, the database was down) leaves it pending for the sweeper."""
    booking_id = message["args"][0]
    error_type = message.get("options", {}).get("error_type", "")
    if error_type != "clinic.errors.DoctorUnavailable":
        logger.error("Processing booking %s failed for good (%s); left pending", booking_id, error_type)
        return
    reject_booking.send(booking_id, bookings.DOCTOR_UNAVAILABLE)
