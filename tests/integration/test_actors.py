"""The actors' logic on Dramatiq's StubBroker with a real SQLite file.

What the real broker does (queues, dead-letter queues, redelivery, the exchange) is proven in
tests/integration and tests/e2e; here the question is what each actor decides and sends.
"""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from actors.middleware import middleware_for
from actors.pipeline import declare
from clinic import bookings, lifecycle, store
from clinic.availability import AvailabilitySystem
from clinic.broker.dispatch import Dispatcher
from clinic.config import Settings
from clinic.ops.relay import relay_once
from clinic.store import Booking, BookingEvent
from tests.support import slot


class RecordingPublisher:
    """Stands in for the RabbitMQ publisher: the notifier's decision is what is under test."""

    def __init__(self):
        self.published = []

    def publish(self, notification):
        self.published.append(notification)


@pytest.fixture
def pipeline(sqlite_url):
    """The actors declared on a StubBroker of their own, a real SQLite file, a recording publisher."""
    settings = Settings.from_env(
        {
            "CLINIC_DOCTORS": "Dr. Ana Ruiz;Dr. Luis Gómez",
            "CLINIC_RETRY_MIN_BACKOFF_MS": "1",
            "CLINIC_RETRY_MAX_BACKOFF_MS": "5",
            "CLINIC_CONFIRM_DELAY": "0",
        }
    )
    store.connect(sqlite_url)
    store.create_schema()
    broker = StubBroker(middleware=middleware_for(settings))
    publisher = RecordingPublisher()
    calendar = AvailabilitySystem(0.0)
    actors = declare(broker, settings, calendar=calendar, publisher=publisher)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield Pipeline(settings, actors, broker, publisher, calendar)
    worker.stop()
    broker.close()


class Pipeline:
    def __init__(self, settings, actors, broker, publisher, calendar):
        self.settings, self.actors, self.broker = settings, actors, broker
        self.publisher, self.calendar = publisher, calendar

    def send(self, actor, *args):
        self.actors[actor].send(*args)

    def book(self, **fields):
        with store.database.connection_context():
            return bookings.request_booking(self.settings, {"patient": "Ana Pérez", "slot": slot(10), **fields}).id

    def run(self, booking_id=None):
        if booking_id:
            self.send("process_booking", booking_id)
        relay = Dispatcher(self.settings, self.broker).send
        for _ in range(20):  # messages cascade from queue to queue: drain until all are quiet
            for queue in self.settings.queues:
                if queue in self.broker.queues:
                    self.broker.join(queue, fail_fast=False)
            relayed = relay_once(self.settings, relay)  # the relay announces what was committed
            if not relayed and not any(self.broker.queues[q].unfinished_tasks for q in self.broker.queues):
                return
        raise AssertionError("the pipeline did not settle")

    def booking(self, booking_id):
        with store.database.connection_context():
            booking = Booking.get_by_id(booking_id)
            query = BookingEvent.select().where(BookingEvent.booking == booking_id).order_by(BookingEvent.id)
            statuses = [e.status for e in query]
        return booking, statuses

    def notifications(self, booking_id):
        return [n for n in self.publisher.published if n.body["booking_id"] == booking_id]


def test_a_free_slot_is_confirmed_and_announced(pipeline):
    booking_id = pipeline.book()
    pipeline.run(booking_id)
    booking, statuses = pipeline.booking(booking_id)
    assert (booking.status, booking.doctor_id, statuses) == ("confirmed", 1, ["pending", "confirmed"])
    [notification] = pipeline.notifications(booking_id)
    assert notification.routing_key == "confirmed"
    assert notification.message_id == f"{booking_id}.confirmed"
    assert notification.body["doctor"] == "Dr. Ana Ruiz"


def test_a_taken_slot_and_a_slot_outside_hours_are_rejected_with_their_reasons(pipeline):
    first, second = pipeline.book(doctor_id=2), pipeline.book(doctor_id=2)
    late = pipeline.book(slot=slot(19, 30))
    pipeline.run(first)
    pipeline.run(second)
    pipeline.run(late)
    assert pipeline.booking(first)[0].status == "confirmed"
    for booking_id, reason in ((second, lifecycle.SLOT_TAKEN), (late, lifecycle.OUTSIDE_HOURS)):
        booking, statuses = pipeline.booking(booking_id)
        assert (booking.status, booking.reason, statuses) == ("rejected", reason, ["pending", "rejected"])
        [notification] = pipeline.notifications(booking_id)
        assert (notification.routing_key, notification.body["reason"]) == ("rejected", reason)


def test_a_calendar_that_never_answers_rejects_after_three_retries(pipeline, monkeypatch):
    asked = []
    monkeypatch.setattr(pipeline.calendar, "failure_rate", 1.0)
    monkeypatch.setattr(pipeline.calendar, "draw", lambda: asked.append(1) or 0.0)
    booking_id = pipeline.book()
    pipeline.run(booking_id)
    booking, statuses = pipeline.booking(booking_id)
    assert len(asked) == 4  # the first attempt and three retries
    assert (booking.status, booking.reason) == ("rejected", "doctor unavailable after 3 retries")
    assert lifecycle.DOCTOR_UNAVAILABLE == f"doctor unavailable after {lifecycle.MAX_RETRIES} retries"
    assert statuses == ["pending", "rejected"]
    [dead] = pipeline.broker.dead_letters
    assert (dead.actor_name, dead.args, dead.options["retries"]) == ("process_booking", (booking_id,), 4)
    assert dead.options["error_type"] == "clinic.errors.DoctorUnavailable"


def test_a_calendar_that_answers_on_the_last_retry_confirms(pipeline, monkeypatch):
    answers = iter([0.0, 0.0, 0.0, 0.9])
    monkeypatch.setattr(pipeline.calendar, "failure_rate", 0.5)
    monkeypatch.setattr(pipeline.calendar, "draw", lambda: next(answers))
    booking_id = pipeline.book()
    pipeline.run(booking_id)
    assert pipeline.booking(booking_id)[0].status == "confirmed"
    assert pipeline.broker.dead_letters == []


def test_another_failure_dead_letters_the_message_but_leaves_the_booking_for_the_sweeper(pipeline, monkeypatch):
    def broken(doctor_id, slot):
        raise RuntimeError("calendar returned garbage")

    monkeypatch.setattr(pipeline.calendar, "check", broken)
    booking_id = pipeline.book()
    pipeline.run(booking_id)
    booking, statuses = pipeline.booking(booking_id)
    assert (booking.status, statuses) == ("pending", ["pending"])
    [dead] = pipeline.broker.dead_letters
    assert dead.options["error_type"] == "builtins.RuntimeError"


def test_every_actor_run_twice_on_the_same_message_changes_nothing_the_second_time(pipeline):
    booking_id = pipeline.book()
    pipeline.run(booking_id)
    pipeline.send("process_booking", booking_id)
    pipeline.send("confirm_booking", booking_id, 1)
    pipeline.send("reject_booking", booking_id, lifecycle.SLOT_TAKEN)
    pipeline.run()
    booking, statuses = pipeline.booking(booking_id)
    assert (booking.status, statuses) == ("confirmed", ["pending", "confirmed"])
    ids = {n.message_id for n in pipeline.notifications(booking_id)}
    assert ids == {f"{booking_id}.confirmed"}  # a re-publication carries the same id


def test_losing_the_race_for_any_doctor_tries_the_next_one(pipeline):
    first, second = pipeline.book(), pipeline.book()
    # both were decided for doctor 1 before either confirmed
    pipeline.send("confirm_booking", first, 1)
    pipeline.send("confirm_booking", second, 1)
    pipeline.run()
    doctors = sorted(pipeline.booking(b)[0].doctor_id for b in (first, second))
    assert doctors == [1, 2]
    assert {pipeline.booking(b)[0].status for b in (first, second)} == {"confirmed"}
