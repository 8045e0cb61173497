"""Publishing booking outcomes to subscribers through a RabbitMQ direct exchange."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator

import pika

from clinic.broker import BROKER_ERRORS, parameters
from clinic.lifecycle import Notification


def declare_exchange(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str) -> None:
    channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)


class Publisher:
    """Publishes persistent notifications with publisher confirms, one connection per thread."""

    def __init__(self, broker_url: str, exchange: str) -> None:
        self.parameters = parameters(broker_url)
        self.exchange = exchange
        self._local = threading.local()

    def publish(self, notification: Notification) -> None:
        """Return once RabbitMQ has confirmed the message; raise if it could not be published."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=notification.message_id,
        )
        for attempt in (1, 2):  # a connection that went stale while idle gets one fresh retry
            try:
                self._channel().basic_publish(
                    exchange=self.exchange,
                    routing_key=notification.routing_key,
                    body=notification.encode(),
                    properties=properties,
                )
                return
            except BROKER_ERRORS:
                self.close()
                if attempt == 2:
                    raise

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
    stop: Callable[[], bool] = lambda: False,
    ready: Callable[[], None] = lambda: None,
) -> Iterator[tuple[pika.BasicProperties, dict]]:
    """Yield ``(properties, body)`` for each notification with one of ``routing_keys`` until ``stop()``.

    The queue is exclusive to this subscriber and vanishes with it; ``ready`` is called once it is bound.
    """
    connection = pika.BlockingConnection(parameters(broker_url))
    try:
        channel = connection.channel()
        declare_exchange(channel, exchange)
        queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
        for key in routing_keys:
            channel.queue_bind(queue=queue, exchange=exchange, routing_key=key)
        ready()
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
            if stop():
                break
            if method is None:
                continue
            yield properties, json.loads(body)
            channel.basic_ack(method.delivery_tag)
    finally:
        if connection.is_open:
            connection.close()
