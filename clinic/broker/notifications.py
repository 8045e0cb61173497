"""Publishing booking outcomes to subscribers through a RabbitMQ direct exchange."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import pika

from clinic.broker import BROKER_ERRORS, parameters, with_backoff
from clinic.broker.send_relay import SendRelay
from clinic.lifecycle import Notification

logger = logging.getLogger("clinic.notifications")

#: Seconds a publish keeps retrying (reconnecting, maybe to another node) before it raises.
PUBLISH_RETRY_WINDOW = 3.0


def declare_exchange(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str) -> None:
    channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)


class Publisher:
    """Publishes persistent notifications with publisher confirms, one connection per thread, to
    whichever node of ``broker_url`` answers; or, given a ``SendRelay``, through its one publisher
    thread, whose confirms the process's threads share (each still waits for its own)."""

    def __init__(self, broker_url: str, exchange: str, *, relay: SendRelay | None = None) -> None:
        self.parameters = parameters(broker_url)
        self.exchange = exchange
        self.relay = relay
        self._local = threading.local()

    def publish(self, notification: Notification) -> None:
        """Return once RabbitMQ has confirmed the message; raise if it could not be published. A
        connection that went stale while idle, or whose node went away, is replaced (with a short
        backoff, for a cluster electing new leaders)."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=notification.message_id,
        )
        if self.relay is not None:  # the process's publisher thread; its confirms are shared
            body, key = notification.encode(), notification.routing_key
            self.relay.publish(self.exchange, key, body, properties, timeout=PUBLISH_RETRY_WINDOW)
            return

        def attempt() -> None:
            try:
                self._channel().basic_publish(
                    exchange=self.exchange,
                    routing_key=notification.routing_key,
                    body=notification.encode(),
                    properties=properties,
                )
            except BROKER_ERRORS:
                self.close()
                raise

        with_backoff(attempt, BROKER_ERRORS, within=PUBLISH_RETRY_WINDOW)

    def _channel(self):
        channel = getattr(self._local, "channel", None)
        if channel is None or not channel.is_open:
            connection = pika.BlockingConnection(self.parameters)
            channel = connection.channel()
            channel.confirm_delivery()
            declare_exchange(channel, self.exchange)
            self._local.connection, self._local.channel = connection, channel
        return channel

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = self._local.channel = None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except BROKER_ERRORS:
                pass


def subscribe(
    broker_url: str,
    exchange: str,
    routing_keys: Iterable[str],
    *,
    queue: str | None = None,
    stop: Callable[[], bool] = lambda: False,
    ready: Callable[[], None] = lambda: None,
    reconnect_delay: float = 1.0,
) -> Iterator[tuple[pika.BasicProperties, dict]]:
    """Yield ``(properties, body)`` for each notification with one of ``routing_keys`` until ``stop()``.

    Without ``queue`` the queue is exclusive to this subscriber and vanishes with it (and with its
    node): what is published while it reconnects is missed. With ``queue``, a durable quorum queue
    of that name is bound, so notifications wait there while the subscriber is away or a node is
    lost. A lost connection is reopened, on another node if need be; a notification whose ack was
    lost with it comes again, so a subscriber drops duplicates by ``message_id``. ``ready`` is
    called once, when the queue is first bound."""
    keys = list(routing_keys)
    announced = False
    while not stop():
        connection = None
        try:
            connection = pika.BlockingConnection(parameters(broker_url))
            channel = connection.channel()
            declare_exchange(channel, exchange)
            if queue is None:
                bound = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
            else:
                bound = channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
                bound = bound.method.queue
            for key in keys:
                channel.queue_bind(queue=bound, exchange=exchange, routing_key=key)
            if not announced:
                announced = True
                ready()
            for method, properties, body in channel.consume(bound, inactivity_timeout=0.5):
                if stop():
                    return
                if method is None:
                    continue
                yield properties, json.loads(body)
                channel.basic_ack(method.delivery_tag)
        except BROKER_ERRORS as error:
            logger.warning("subscription lost (%s); reconnecting in %.0fs", type(error).__name__, reconnect_delay)
            time.sleep(reconnect_delay)
        finally:
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except BROKER_ERRORS:
                    pass
