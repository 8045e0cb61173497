"""Publishing booking outcomes to subscribers through a RabbitMQ direct exchange."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import pika

from clinic.broker import BROKER_ERRORS, parameters
from clinic.broker.send_relay import SendRelay
from clinic.lifecycle import Notification

logger = logging.getLogger("clinic.notifications")

#: Seconds a publish waits for its confirm (the relay reconnecting, maybe to another node) before it raises.
PUBLISH_RETRY_WINDOW = 3.0


def declare_exchange(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str) -> None:
    channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)


class Publisher:
    """Publishes persistent notifications with publisher confirms through the process's
    ``SendRelay``: one publisher thread, whose confirms the process's threads share; each
    ``publish`` still returns only once its own message is confirmed."""

    def __init__(self, exchange: str, relay: SendRelay) -> None:
        self.exchange = exchange
        self.relay = relay

    def publish(self, notification: Notification) -> None:
        """Return once RabbitMQ has confirmed the message; ConnectionClosed (so Dramatiq retries)
        when no confirm comes within ``PUBLISH_RETRY_WINDOW``, while the relay reconnects, maybe
        to another node."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=notification.message_id,
        )
        body, key = notification.encode(), notification.routing_key
        self.relay.publish(self.exchange, key, body, properties, timeout=PUBLISH_RETRY_WINDOW)


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
