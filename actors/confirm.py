"""The confirmer: gives the slot to the booking, unless another booking got it first."""

from __future__ import annotations

import dramatiq

from actors.notify import notify_booking
from actors.reject import reject_booking
from actors.runtime import settings
from clinic import bookings
from clinic.availability import confirmation_delay
from clinic.bookings import Outcome


@dramatiq.actor(actor_name="confirm_booking", queue_name=settings.queue("confirm"))
def confirm_booking(booking_id: str, doctor_id: int) -> None:
    confirmation_delay(settings.confirm_delay)
    outcome = bookings.confirm(booking_id, doctor_id)
    if outcome is Outcome.CONFLICT and bookings.may_choose_another_doctor(booking_id):
        # Another booking took this doctor first; any free doctor will do, so decide again.
        dramatiq.get_broker().get_actor("process_booking").send(booking_id)
    elif outcome is Outcome.CONFLICT:
        reject_booking.send(booking_id, bookings.SLOT_TAKEN)
    elif outcome in (Outcome.CHANGED, Outcome.ALREADY):
        # ALREADY: an earlier delivery confirmed but may have died before this send.
        notify_booking.send(booking_id)
