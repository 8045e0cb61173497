"""The API's send relay on the real RabbitMQ: every step handed over reaches its queue with a
publisher confirm, through a connection cut in mid-stream, a first node that is down, and a
broker that is away for a while (held, then sent)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pika
import pytest
from dramatiq import Message
from dramatiq.errors import ConnectionClosed

from clinic import lifecycle
from clinic.broker.notifications import Publisher
from clinic.broker.send_relay import SendRelay
from clinic.config import Settings
from clinic.lifecycle import Notification
from tests.support import free_port


class CuttableProxy:
    """A TCP proxy to RabbitMQ whose connections the test can cut, or refuse while it is "away"."""

    def __init__(self, upstream_port: int = 5672) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.away = False
        self.accepted = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def cut(self) -> None:
        for pair in list(self._pairs):
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
        self._pairs.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.away:
                client.close()
                continue
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._pairs.append((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.close()


def relay_settings(namespace: str, broker_url: str) -> Settings:
    return Settings.from_env({"CLINIC_NAMESPACE": namespace, "CLINIC_BROKER_URL": broker_url})


def processor_queue(rabbitmq: str, settings: Settings) -> list[Message]:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        channel, found = connection.channel(), []
        while True:
            method, _, body = channel.basic_get(settings.queue("process"), auto_ack=True)
            if method is None:
                return found
            found.append(Message.decode(body))
    finally:
        connection.close()


@pytest.mark.parametrize("gather", [0.0, 0.005])
def test_every_step_handed_over_reaches_the_processor_queue_confirmed(namespace, rabbitmq, gather):
    settings = relay_settings(namespace, rabbitmq)
    relay = SendRelay(settings, gather=gather)
    ids = [f"booking-{n}" for n in range(500)]
    try:
        for booking_id in ids:
            relay(lifecycle.accepted(booking_id))
        relay(lifecycle.Step(None, ()))  # a stop sends nothing
        assert relay.flush(timeout=20)
        assert (relay.confirmed, relay.held) == (500, 0)
    finally:
        relay.close()
    messages = processor_queue(rabbitmq, settings)
    assert [list(m.args) for m in messages] == [[booking_id] for booking_id in ids]  # in order
    assert {m.actor_name for m in messages} == {"process_booking"}


def test_with_gather_a_step_after_a_quiet_moment_goes_at_once_and_a_busy_moment_waits_its_turn(namespace, rabbitmq):
    settings = relay_settings(namespace, rabbitmq)
    relay = SendRelay(settings, gather=0.6)

    def confirmed_after(booking_id: str) -> float:
        started = time.monotonic()
        relay(lifecycle.accepted(booking_id))
        assert relay.flush(timeout=10)
        return time.monotonic() - started

    try:
        confirmed_after("warm-up")  # connected, queues declared
        time.sleep(0.7)  # the last round is older than the gather
        assert confirmed_after("quiet") < 0.3  # no wait for company
        assert confirmed_after("busy") > 0.4  # right after a round: waits for the next
    finally:
        relay.close()
    assert [list(m.args) for m in processor_queue(rabbitmq, settings)] == [["warm-up"], ["quiet"], ["busy"]]


def test_a_connection_cut_mid_stream_loses_no_step(namespace, rabbitmq):
    proxy = CuttableProxy()
    settings = relay_settings(namespace, proxy.url())
    relay = SendRelay(settings)
    ids = [f"booking-{n}" for n in range(3000)]
    try:
        for number, booking_id in enumerate(ids):
            relay(lifecycle.accepted(booking_id))
            if number in (1000, 2000):
                # once connected, let some go out, then cut them off before or after their confirm
                connections = number // 1000
                deadline = time.monotonic() + 10
                while proxy.accepted < connections and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.05)
                proxy.cut()
        assert relay.flush(timeout=30), f"{relay.held} still held"
    finally:
        relay.close()
        proxy.close()
    assert proxy.accepted >= 3  # it really reconnected after each cut
    arrived = [m.args[0] for m in processor_queue(rabbitmq, settings)]
    assert set(arrived) == set(ids)  # every one at least once; a duplicate is absorbed by the actors


def test_a_first_node_that_is_down_costs_one_attempt(namespace, rabbitmq):
    settings = relay_settings(namespace, f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F;{rabbitmq}")
    relay = SendRelay(settings)
    try:
        for n in range(20):
            relay(lifecycle.accepted(f"booking-{n}"))
        assert relay.flush(timeout=20)
    finally:
        relay.close()
    assert len(processor_queue(rabbitmq, settings)) == 20


def test_steps_are_held_while_the_broker_is_away_and_sent_when_it_is_back(namespace, rabbitmq):
    proxy = CuttableProxy()
    proxy.away = True
    settings = relay_settings(namespace, proxy.url())
    relay = SendRelay(settings)
    try:
        for n in range(10):
            relay(lifecycle.accepted(f"booking-{n}"))
        assert not relay.flush(timeout=1.5)
        assert relay.held == 10
        proxy.away = False
        assert relay.flush(timeout=20)
    finally:
        relay.close()
        proxy.close()
    assert sorted(m.args[0] for m in processor_queue(rabbitmq, settings)) == sorted(f"booking-{n}" for n in range(10))


def test_beyond_its_limit_the_relay_drops_the_oldest_for_the_sweeper(namespace, rabbitmq):
    proxy = CuttableProxy()
    proxy.away = True
    settings = relay_settings(namespace, proxy.url())
    relay = SendRelay(settings, held_limit=5)
    try:
        for n in range(8):
            relay(lifecycle.accepted(f"booking-{n}"))
        assert (relay.held, relay.dropped) == (5, 3)
        proxy.away = False
        assert relay.flush(timeout=20)
    finally:
        relay.close()
        proxy.close()
    assert sorted(m.args[0] for m in processor_queue(rabbitmq, settings)) == [f"booking-{n}" for n in range(3, 8)]


def test_send_returns_once_its_own_step_is_confirmed_and_raises_when_none_comes(namespace, rabbitmq):
    proxy = CuttableProxy()
    settings = relay_settings(namespace, proxy.url())
    relay = SendRelay(settings)
    try:
        message = relay.send(lifecycle.accepted("booking-1"), timeout=20)
        assert relay.held == 0 and relay.confirmed == 1
        assert [m.message_id for m in processor_queue(rabbitmq, settings)] == [message.message_id]
        proxy.away = True
        proxy.cut()
        with pytest.raises(ConnectionClosed):  # Dramatiq retries the worker's message then
            relay.send(lifecycle.accepted("booking-2"), timeout=1)
        assert relay.held == 1  # still held: it goes out once the broker is back
        proxy.away = False
        assert relay.flush(timeout=20)
    finally:
        relay.close()
        proxy.close()
    assert [m.args[0] for m in processor_queue(rabbitmq, settings)] == ["booking-2"]


def test_notifications_through_the_relay_reach_a_bound_queue_and_need_no_subscriber(namespace, rabbitmq):
    settings = relay_settings(namespace, rabbitmq)
    relay = SendRelay(settings, exchanges=(settings.exchange,))
    publisher = Publisher(settings.exchange, relay)
    confirmed = Notification(f"{namespace}-1.confirmed", "confirmed", {"booking_id": f"{namespace}-1"})
    try:
        publisher.publish(confirmed)  # no queue bound yet: confirmed all the same, not returned
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, settings.exchange, routing_key="confirmed")
        publisher.publish(confirmed)
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        connection.close()
    finally:
        relay.close()
    assert method is not None and properties.message_id == confirmed.message_id
    assert body == confirmed.encode()
    assert relay.confirmed == 2
