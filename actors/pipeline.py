"""The pipeline's actors: each runs its lifecycle step and sends what the step says comes next.

Every rule lives in :mod:`clinic.lifecycle`; an actor here is one line that routes a step."""

from __future__ import annotations

import functools
from collections.abc import Callable

import dramatiq

from clinic import bookings, lifecycle
from clinic.availability import AvailabilitySystem
from clinic.broker.dispatch import Dispatcher
from clinic.broker.notifications import Publisher
from clinic.config import CONFIRM, NOTIFY, PROCESS, REJECT, Settings, actor_name
from clinic.errors import TransientFailure

#: Retries' ``on_retry_exhausted`` target for the processor; it runs on the reject queue.
EXHAUSTED = "reject_unanswered_booking"


def declare(
    broker: dramatiq.Broker,
    settings: Settings,
    *,
    calendar: AvailabilitySystem,
    publisher: Publisher,
    send: Callable[[lifecycle.Step], object] | None = None,
    books: lifecycle.BookingStore = bookings,
) -> dict[str, dramatiq.Actor]:
    """Declare the actors on ``broker``, with their collaborators; return them by actor name.
    ``send`` sends a step and returns once RabbitMQ confirmed it (by default through ``broker``);
    ``books`` reads and writes the bookings (a worker process's writes share transactions)."""
    route = send or Dispatcher(settings, broker).send

    def process_booking(booking_id: str) -> None:
        route(lifecycle.process(settings, booking_id, calendar, books=books))

    def confirm_booking(booking_id: str, doctor_id: int) -> None:
        route(lifecycle.confirm(booking_id, doctor_id, calendar, books=books))

    def reject_booking(booking_id: str, reason: str) -> None:
        route(lifecycle.reject(booking_id, reason, books=books))

    def notify_booking(booking_id: str, status: str | None = None) -> None:
        for notice in lifecycle.notifications(settings, booking_id, status):
            publisher.publish(notice)

    def reject_unanswered_booking(message: dict, retries: dict) -> None:
        error_type = (message.get("options") or {}).get("error_type", "")
        route(lifecycle.retries_exhausted(message["args"][0], error_type))

    def actor(stage: str, fn: Callable, name: str | None = None, **options) -> dramatiq.Actor:
        return dramatiq.actor(
            _retry_transient(fn),
            actor_name=name or actor_name(stage),
            queue_name=settings.queue(stage),
            broker=broker,
            **options,
        )

    declared = [
        actor(PROCESS, process_booking, on_retry_exhausted=EXHAUSTED),
        actor(CONFIRM, confirm_booking),
        actor(REJECT, reject_booking),
        actor(REJECT, reject_unanswered_booking, EXHAUSTED),
        actor(NOTIFY, notify_booking),
    ]
    return {declared_actor.actor_name: declared_actor for declared_actor in declared}


def _retry_transient(fn: Callable) -> Callable:
    """A transient failure (the calendar did not answer) is expected now and then: it becomes
    ``dramatiq.Retry``, so Retries schedules the next attempt without logging a traceback."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TransientFailure as failure:
            raise dramatiq.Retry(str(failure)) from failure

    return run
