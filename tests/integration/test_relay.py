"""The events and the relay on real databases and the real RabbitMQ: every status change is relayed
once it is committed, even when the broker was down at that instant, and a stream's reader never
skips an event that commits after a later one (PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pika
import pytest
from dramatiq import Message

from clinic import bookings, events, store
from clinic.broker.dispatch import Dispatcher, rabbitmq_broker
from clinic.config import Settings
from clinic.ops.relay import relay_once
from clinic.store import BookingEvent
from clinic.store.sqlite import CommitWatcher
from tests.support import free_port, slot


def relay_settings(namespace: str, broker_url: str) -> Settings:
    return Settings.from_env(
        {"CLINIC_NAMESPACE": namespace, "CLINIC_BROKER_URL": broker_url, "CLINIC_CONFIRM_DELAY": "0"}
    )


def taken(channel, queue: str) -> list[Message]:
    found = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.append(Message.decode(body))


def test_a_cancel_committed_while_the_broker_is_down_is_announced_once_it_is_back(db, namespace, rabbitmq):
    settings = relay_settings(namespace, rabbitmq)
    booking = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
    assert bookings.cancel(booking.id) is bookings.Outcome.CHANGED
    db.close()

    down = relay_settings(namespace, f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    with pytest.raises(Exception):  # noqa: B017 - whatever the refused connection raises
        relay_once(down, Dispatcher(down, rabbitmq_broker(down)).send)
    with store.database.connection_context():
        assert [e.status for e in BookingEvent.select().where(BookingEvent.relayed_at.is_null())] == [
            "pending",
            "cancelled",
        ]

    broker = rabbitmq_broker(settings)
    broker.declare_queue(settings.queue("notify"))
    assert relay_once(settings, Dispatcher(settings, broker).send) == 2
    assert relay_once(settings, Dispatcher(settings, broker).send) == 0  # relayed: not sent twice
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        [message] = taken(connection.channel(), settings.queue("notify"))
    finally:
        connection.close()
    assert (message.actor_name, list(message.args)) == ("notify_booking", [booking.id, "cancelled"])
    broker.close()


def test_the_relays_compiled_reads_and_marks_match_what_peewee_builds(db, settings):
    first = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
    second = bookings.request_booking(settings, {"patient": "Luis Gómez", "slot": slot(11), "doctor_id": 2})
    assert bookings.cancel(first.id) is bookings.Outcome.CHANGED
    plain = list(
        BookingEvent.select(BookingEvent, store.Booking)
        .join(store.Booking)
        .where(BookingEvent.relayed_at.is_null())
        .order_by(BookingEvent.id)
    )
    compiled = events.unrelayed()
    assert [(row.__data__, booking.__data__) for row, booking in compiled] == [
        (row.__data__, row.booking.__data__) for row in plain
    ]
    assert [row.booking.id for row, _ in compiled] == [first.id, second.id, first.id]
    assert all(row.at.tzinfo is not None and booking.slot.tzinfo is not None for row, booking in compiled)

    events.mark_relayed([compiled[0][0].id, compiled[2][0].id])
    assert [row.booking.id for row, _ in events.unrelayed()] == [second.id]
    events.mark_relayed([compiled[1][0].id])
    assert events.unrelayed() == []


def test_upgrading_a_database_marks_its_past_history_relayed(sqlite_url, settings):
    db = store.connect(sqlite_url)
    store.create_schema()
    with db.connection_context():
        booking = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
        db.execute_sql("DROP INDEX bookingevent_id")
        db.execute_sql("ALTER TABLE booking_event DROP COLUMN relayed_at")
    store.create_schema()  # an older database: the column is added, the past is not announced again
    with db.connection_context():
        assert events.unrelayed() == []
        assert BookingEvent.get(BookingEvent.booking == booking.id).relayed_at is not None


@pytest.mark.postgresql
def test_a_stream_waits_for_an_event_that_commits_after_a_later_one(postgres_url, settings):
    db = store.connect(postgres_url)
    store.create_schema()
    name = postgres_url.rsplit("/", 1)[1]
    with db.connection_context():
        first = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
        second = bookings.request_booking(settings, {"patient": "Luis Gil", "slot": slot(11)})
        start = events.latest_id()

    import psycopg2

    slow = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name)
    try:
        with slow.cursor() as cursor:  # a transaction takes the next id and does not commit yet
            cursor.execute(
                "INSERT INTO booking_event (booking_id, status, reason, at) VALUES (%s, 'cancelled', NULL, now()) "
                "RETURNING id",
                (first.id,),
            )
            (late_id,) = cursor.fetchone()
        with db.connection_context():
            assert bookings.cancel(second.id) is bookings.Outcome.CHANGED  # a later id, committed first
            clock = [0.0]
            mark = events.Watermark(clock=lambda: clock[0])
            assert mark.safe(start) == start  # the later event waits behind the missing id
            slow.commit()
            assert mark.safe(start) == late_id + 1  # both, in id order
            found = events.events_after(settings, start, late_id + 1)
            assert [(e.id, e.type) for e in found] == [
                (late_id, "booking.cancelled"),
                (late_id + 1, "booking.cancelled"),
            ]
    finally:
        slow.close()


@pytest.mark.postgresql
def test_an_id_a_rolled_back_transaction_took_is_skipped_once_it_settles(postgres_url, settings):
    db = store.connect(postgres_url)
    store.create_schema()
    with db.connection_context():
        first = bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
        start = events.latest_id()
        with db.atomic() as transaction:
            BookingEvent.insert(booking=first.id, status="cancelled", at=store.utcnow()).execute()
            transaction.rollback()
        second = bookings.request_booking(settings, {"patient": "Luis Gil", "slot": slot(11)})
        clock = [0.0]
        mark = events.Watermark(clock=lambda: clock[0], settle=2.0)
        assert mark.safe(start) == start
        clock[0] = 2.5
        newest = events.latest_id()
        assert newest == start + 2 and mark.safe(start) == newest
        assert [e.booking_id for e in events.events_after(settings, start, newest)] == [second.id]


def test_the_commit_watcher_wakes_on_another_connections_commit_and_only_then(tmp_path):
    path = str(tmp_path / "watched.db")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    watcher = CommitWatcher(path)
    stop = threading.Event()
    started = time.monotonic()
    assert watcher.wait(0.2, stop) is False  # nothing committed: it waits the whole timeout
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, lambda: writer.execute("INSERT INTO t VALUES (1)")).start()
    started = time.monotonic()
    assert watcher.wait(5.0, stop) is True
    assert time.monotonic() - started < 1.0  # woken by the commit, not by the timeout
    stop.set()
    assert watcher.wait(5.0, stop) is False  # a stop ends the wait at once


@pytest.mark.postgresql
def test_a_committed_event_wakes_the_relay_on_postgresql_and_a_rolled_back_one_does_not(postgres_url, settings):
    database = store.connect(postgres_url)
    store.create_schema()
    watcher = store.commit_watcher(database)
    stop = threading.Event()
    assert watcher.wait(0.3, stop) is False  # nothing committed yet

    with store.database.connection_context():
        with pytest.raises(RuntimeError):
            with store.database.atomic():
                bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)})
                raise RuntimeError("rolled back")
    assert watcher.wait(0.5, stop) is False  # the insert of a rolled-back transaction says nothing

    def commit_one() -> None:
        with store.database.connection_context():
            bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(11)})

    threading.Timer(0.1, commit_one).start()
    started = time.monotonic()
    assert watcher.wait(5.0, stop) is True
    assert time.monotonic() - started < 1.0  # woken by the commit, not by the timeout
    database.close_all()
