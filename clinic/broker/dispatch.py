"""Sending a pipeline step to its stage's actor, by name, without importing the actors; and the
broker that declares the stages' queues as ``CLINIC_QUEUE_TYPE`` says."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import dramatiq
import pika
import pika.exceptions
from dramatiq import Message
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, _RabbitmqConsumer
from dramatiq.common import dq_name, xq_name
from dramatiq.errors import ConnectionClosed

from clinic import ids, logs
from clinic.broker import parameters, with_backoff
from clinic.config import Settings, actor_name
from clinic.errors import ConfigError
from clinic.lifecycle import Step

#: Seconds a send keeps retrying (with a backoff) while the cluster elects new queue leaders or
#: this process reconnects to another node; Dramatiq's own six attempts are used up in 0.1 s.
SEND_RETRY_WINDOW = 3.0


def stage_queue_arguments(queue_name: str, queue_type: str) -> dict[str, Any]:
    """What Dramatiq gives a stage queue and its ``.DQ`` (dead-lettering into the ``.XQ``), and,
    for quorum queues, the replicated type with at-least-once dead-lettering: without it a
    message dead-lettered while a leader changes can be lost. At-least-once needs
    ``reject-publish`` overflow (RabbitMQ refuses it with the default ``drop-head``)."""
    arguments: dict[str, Any] = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": xq_name(queue_name)}
    if queue_type == "quorum":
        arguments.update(
            {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        )
    return arguments


def dead_letter_queue_arguments(queue_type: str) -> dict[str, Any]:
    """The ``.XQ``: Dramatiq's retention (a static TTL, since RabbitMQ expires from the head)."""
    arguments: dict[str, Any] = {"x-message-ttl": DEAD_MESSAGE_TTL}
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    return arguments


def declarations(queue_name: str, queue_type: str, delivery_limit: int) -> list[tuple[str, dict[str, Any]]]:
    """``(name, arguments)`` of a stage's three queues. Only the stage queue gets a delivery limit
    (quorum only): a message that kills its worker again and again goes to the ``.XQ`` instead of
    looping. Never on the ``.DQ``, whose messages wait there by design."""
    stage = stage_queue_arguments(queue_name, queue_type)
    limited = {**stage, "x-delivery-limit": delivery_limit} if queue_type == "quorum" else stage
    return [
        (queue_name, limited),
        (dq_name(queue_name), stage),
        (xq_name(queue_name), dead_letter_queue_arguments(queue_type)),
    ]


class QueueTypeMismatch(ConfigError):
    """A queue of this namespace exists with other arguments than the settings would give it."""


class GatheredAcks(_RabbitmqConsumer):
    """Dramatiq's RabbitMQ consumer, whose acks wake its connection's thread once for all that
    are waiting, and go out in one write. Each worker thread acks from its own thread, and
    Dramatiq's consumer hands every ack to the consumer's thread with ``add_callback_threadsafe``:
    one wake-up of that thread per message, and pika's ``BlockingChannel.basic_ack`` then polls
    the socket until that one frame is sent. Here the first ack of a batch asks for the wake-up,
    the acks that arrive before it runs ride along, and they are written on the pika channel that
    the blocking one wraps, without waiting: the consumer's thread goes straight back to its poll
    for the next delivery, which sends them. Each is still its own ack, in the order the worker
    threads finished (a multiple ack could take in a message another thread is about to reject),
    and rejects go as before."""

    def __init__(self, *args, **kwargs) -> None:
        self._acks: list[int] = []
        self._acks_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def ack(self, message) -> None:
        try:
            self.known_tags.remove(message._tag)
        except KeyError:
            self.logger.warning("Failed to ack message: not in known tags.")
            return
        with self._acks_lock:
            self._acks.append(message._tag)
            first = len(self._acks) == 1
        if first:
            try:
                self.connection.add_callback_threadsafe(self._send_acks)
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as error:
                raise ConnectionClosed(error) from None

    def _send_acks(self) -> None:
        with self._acks_lock:
            tags, self._acks = self._acks, []
        channel = self.channel._impl  # pika's own Channel: basic_ack only writes the frame
        for tag in tags:
            channel.basic_ack(tag)


class ClinicBroker(RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with publisher confirms (``send`` returns once RabbitMQ has the
    message), connecting to the nodes of ``CLINIC_BROKER_URL`` in this process's order, declaring
    queues of ``CLINIC_QUEUE_TYPE``, and retrying a refused send with a backoff. It connects
    lazily, on the first send or consume of each thread."""

    def __init__(
        self, *, url: str, queue_type: str = "classic", delivery_limit: int = 20, middleware=(), **options
    ) -> None:
        super().__init__(url=url, confirm_delivery=True, middleware=list(middleware), **options)
        self.url = url
        self.parameters = parameters(url)
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit

    @property
    def consumer_class(self):
        return GatheredAcks

    def _build_queue_arguments(self, queue_name):
        return stage_queue_arguments(queue_name, self.queue_type)

    def _declare_queue(self, queue_name):
        _, arguments = declarations(queue_name, self.queue_type, self.delivery_limit)[0]
        return self.channel.queue_declare(queue=queue_name, durable=True, arguments=arguments)

    def _declare_xq_queue(self, queue_name):
        arguments = dead_letter_queue_arguments(self.queue_type)
        return self.channel.queue_declare(queue=xq_name(queue_name), durable=True, arguments=arguments)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        send = super().enqueue
        return with_backoff(lambda: send(message, delay=delay), (ConnectionClosed,), within=SEND_RETRY_WINDOW)

    def verify_queues(self, queue_names: Sequence[str]) -> None:
        """Declare each stage's queues as the settings say; raise :class:`QueueTypeMismatch`, naming
        the type they were declared with, when one exists with other arguments (RabbitMQ would
        only say "inequivalent arg", and a worker would retry that every 3 s, consuming nothing)."""
        connection = pika.BlockingConnection(parameters(self.url, timeout=10))
        try:
            for queue_name in queue_names:
                for name, arguments in declarations(queue_name, self.queue_type, self.delivery_limit):
                    refusal = _declare(connection, name, arguments)
                    if refusal is not None:
                        raise self._mismatch(connection, queue_name, name, refusal)
        finally:
            if connection.is_open:
                connection.close()

    def _mismatch(self, connection, queue_name: str, name: str, refusal: str) -> QueueTypeMismatch:
        for other in ("classic", "quorum"):
            if other == self.queue_type:
                continue
            for candidate, arguments in declarations(queue_name, other, self.delivery_limit):
                if candidate == name and _declare(connection, name, arguments) is None:
                    return QueueTypeMismatch(
                        "CLINIC_QUEUE_TYPE",
                        f"is {self.queue_type}, but {name} was declared as a {other} queue: start with "
                        f"CLINIC_QUEUE_TYPE={other}, or drain and delete the namespace's queues first",
                    )
        return QueueTypeMismatch(
            "CLINIC_QUEUE_TYPE", f"({self.queue_type}) does not match how {name} was declared (RabbitMQ: {refusal})"
        )


def _declare(connection: pika.BlockingConnection, name: str, arguments: dict[str, Any]) -> str | None:
    """Declare one durable queue on a channel of its own; the broker's refusal (406), or None."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code != 406:
            raise
        return closed.reply_text
    channel.close()
    return None


def rabbitmq_broker(settings: Settings, middleware: Sequence[dramatiq.Middleware] = ()) -> ClinicBroker:
    """The broker for the settings' nodes, queue type and delivery limit."""
    return ClinicBroker(
        url=settings.broker_url,
        queue_type=settings.queue_type,
        delivery_limit=settings.delivery_limit,
        middleware=middleware,
    )


class Dispatcher:
    """Sends each :class:`Step` as a Dramatiq message to ``{namespace}.{stage}``.

    The API and the sweeper send through this without declaring any actor (a process that only
    sends needs none of the workers' setup); the workers route their steps through it too."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.broker = broker

    def send(self, step: Step) -> Message | None:
        """Enqueue the step's message (confirmed by RabbitMQ); nothing for a stop. The request
        id of the work at hand (``clinic.logs``) travels in the message's options."""
        if step.stage is None:
            return None
        return self.broker.enqueue(message_for(self.settings, step))


def message_for(settings: Settings, step: Step) -> Message:
    """The Dramatiq message of a step (not a stop); it carries the request id of the work at hand."""
    request_id = logs.current("request_id")
    return Message(
        queue_name=settings.queue(step.stage),
        actor_name=actor_name(step.stage),
        args=tuple(step.args),
        kwargs={},
        options={"request_id": request_id} if request_id else {},
        message_id=ids.new_id(),  # Dramatiq's own is uuid.uuid4(): a system call an id (clinic.ids)
    )
