"""The notifier: publishes a booking's outcome on the notifications exchange."""

from __future__ import annotations

import dramatiq

from actors.runtime import publisher, settings
from clinic import bookings
from clinic.bookings import FINAL_STATUSES
from clinic.notifications import notification_for


@dramatiq.actor(actor_name="notify_booking", queue_name=settings.queue("notify"))
def notify_booking(booking_id: str) -> None:
    booking = bookings.load(booking_id)
    if booking is None or booking.status not in FINAL_STATUSES:
        return
    publisher.publish(notification_for(settings, booking))
