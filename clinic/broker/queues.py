"""How many messages wait in each stage's queue, its delay queue and its dead-letter queue, asked of
RabbitMQ by a passive ``queue_declare`` (which creates nothing) on one short-lived connection."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pika.exceptions
from dramatiq.common import dq_name, xq_name

from clinic.broker import BROKER_ERRORS, parameters
from clinic.config import STAGES, Settings
from clinic.errors import BrokerUnavailable


@dataclass(frozen=True)
class QueueDepth:
    stage: str
    queue: str
    ready: int  # waiting in the stage's queue, not yet delivered to a worker
    delayed: int  # waiting in its delay queue (retries with backoff)
    dead: int  # in its dead-letter queue

    def as_dict(self) -> dict:
        return asdict(self)


def queue_depths(settings: Settings, *, timeout: float = 1.0) -> list[QueueDepth]:
    """Every stage's depths; a queue that does not exist yet counts 0. BrokerUnavailable when
    RabbitMQ does not answer within ``timeout`` seconds, so a caller (a scrape, a page) never hangs."""
    try:
        connection = pika.BlockingConnection(parameters(settings.broker_url, timeout=timeout))
    except BROKER_ERRORS as error:
        raise BrokerUnavailable(type(error).__name__) from None
    try:
        depths = []
        for stage in STAGES:
            queue = settings.queue(stage)
            counts = [_count(connection, name) for name in (queue, dq_name(queue), xq_name(queue))]
            depths.append(QueueDepth(stage, queue, *counts))
        return depths
    except BROKER_ERRORS as error:
        raise BrokerUnavailable(type(error).__name__) from None
    finally:
        if connection.is_open:
            connection.close()


def _count(connection, queue: str) -> int:
    channel = connection.channel()
    try:
        return channel.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code != 404:
            raise
        return 0
    finally:
        if channel.is_open:
            channel.close()
