"""Dead letters: the messages Dramatiq gave up on, in each stage's ``{ns}.<stage>.XQ``.

Listing takes each message without acknowledging it and lets RabbitMQ requeue it when the
channel closes, so nothing is removed. Replay sends a message again through Dramatiq's broker,
its retry count reset, to its stage's queue (publisher confirms), and only then acknowledges the
dead copy. Dramatiq keeps a dead letter for ``dramatiq_dead_message_ttl`` milliseconds (7 days
unless that variable says otherwise; the XQ's ``x-message-ttl``).

A message redelivered after a lost connection can die twice, so an XQ may hold two copies of one
``message_id``: they are listed once, and replaying one drops its copies.

What is shown is ids and the error's class: a traceback may quote a patient's name, so it is
never shown.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pika
import pika.exceptions
from dramatiq import Message
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.common import q_name, xq_name
from dramatiq.errors import DecodeError

from clinic.broker import BROKER_ERRORS, parameters
from clinic.broker.dispatch import rabbitmq_broker
from clinic.config import STAGES, Settings
from clinic.errors import BrokerUnavailable, DeadLetterNotFound, InvalidField

#: How long Dramatiq keeps a dead letter: the ``x-message-ttl`` it gives every XQ, in days.
_DAY_MS = 86_400_000
_WHOLE_DAYS, _REST_MS = divmod(DEAD_MESSAGE_TTL, _DAY_MS)
RETENTION_DAYS: int | float = DEAD_MESSAGE_TTL / _DAY_MS if _REST_MS else _WHOLE_DAYS
#: At most this many dead letters are looked at per queue and call.
LIMIT = 1000
# Options that belong to the failed attempts; a replayed message starts without them.
_ATTEMPT_OPTIONS = ("retries", "traceback", "error_type", "eta")


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    message_id: str
    actor: str
    booking_id: str | None
    retries: int
    error: str
    enqueued_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_of(queue: str | None, *, field: str = "queue") -> str | None:
    """The stage a ``queue`` names (``process``, ``clinic.process`` or ``clinic.process.XQ``), or None."""
    if queue is None:
        return None
    stage = q_name(queue).rsplit(".", 1)[-1] if isinstance(queue, str) else None
    if stage not in STAGES:
        raise InvalidField(field, f"must be one of {', '.join(STAGES)}")
    return stage


def replay_request(body: Any) -> tuple[str | None, str | None]:
    """``(stage, message_id)`` from ``{"queue"?, "message_id" | "all": true}``; message_id None means all."""
    if not isinstance(body, dict):
        raise InvalidField("body", "must be a JSON object")
    unknown = sorted(str(key)[:64] for key in body if key not in ("queue", "message_id", "all"))
    if unknown:
        raise InvalidField(unknown[0], "is not a field of a replay request")
    if "queue" in body and not isinstance(body["queue"], str):
        raise InvalidField("queue", f"must be one of {', '.join(STAGES)}")
    stage = stage_of(body.get("queue"))
    message_id, every = body.get("message_id"), body.get("all", False)
    if not isinstance(every, bool):
        raise InvalidField("all", "must be true or false")
    if "message_id" in body and (not isinstance(message_id, str) or not 0 < len(message_id) <= 64):
        raise InvalidField("message_id", "must be a message id, as GET /admin/dead-letters shows it")
    if (message_id is None) == (not every):
        raise InvalidField("message_id", 'give either "message_id" or "all": true')
    return stage, message_id


def describe(queue: str, body: bytes) -> tuple[DeadLetter, Message | None]:
    """What may be shown of one dead message (ids, actor, retries, the error's class), and the
    message itself, decoded by Dramatiq (None when it cannot be)."""
    try:
        message = Message.decode(body)
    except DecodeError:
        return DeadLetter(queue, "?", "?", None, 0, "undecodable message", None), None
    retries = message.options.get("retries", 0)
    stamp = message.message_timestamp
    letter = DeadLetter(
        queue=queue,
        message_id=str(message.message_id),
        actor=str(message.actor_name),
        booking_id=_booking_id(message.args),
        retries=retries if isinstance(retries, int) else 0,
        error=_error(message.options),
        enqueued_at=datetime.fromtimestamp(stamp / 1000, UTC).isoformat() if isinstance(stamp, int) else None,
    )
    return letter, message


def revived(message: Message) -> Message:
    """The message as it is sent again: to its stage's queue, as if never tried."""
    options = {k: v for k, v in message.options.items() if k not in _ATTEMPT_OPTIONS}
    return dataclasses.replace(message, queue_name=q_name(message.queue_name), options={**options, "retries": 0})


class DeadLetters:
    """The dead-letter queues of one namespace on the broker."""

    def __init__(self, settings: Settings, *, broker: dramatiq.Broker | None = None, limit: int = LIMIT) -> None:
        self.settings = settings
        self.limit = limit
        self._broker = broker

    @property
    def broker(self) -> dramatiq.Broker:
        """Dramatiq's broker, for replays (built on first use: listing needs none)."""
        if self._broker is None:
            self._broker = rabbitmq_broker(self.settings)
        return self._broker

    def list(self, stage: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of one stage, or of all), oldest first per queue, each message id
        once; none is removed."""
        found: dict[tuple[str, str] | int, DeadLetter] = {}
        with self._connection() as connection:
            for queue in self._queues(stage):
                with _taking(connection, queue) as taken:
                    for _tag, body in taken(self.limit):
                        letter, message = describe(queue, body)
                        found.setdefault((queue, letter.message_id) if message else len(found), letter)
        return list(found.values())

    def replay(self, *, stage: str | None = None, message_id: str | None = None) -> list[DeadLetter]:
        """Send the dead letter ``message_id`` (or, without one, all of them) back to its queue."""
        replayed: list[DeadLetter] = []
        with self._connection() as connection:
            for queue in self._queues(stage):
                sent: set[str] = set()
                with _taking(connection, queue) as taken:
                    for tag, body in taken(self.limit):
                        letter, message = describe(queue, body)
                        if message is None or message_id not in (None, letter.message_id):
                            continue
                        if letter.message_id not in sent:
                            self._send_again(message)
                            sent.add(letter.message_id)
                            replayed.append(letter)
                        taken.channel.basic_ack(tag)  # only once the copy is confirmed
                if message_id is not None and replayed:
                    return replayed
        if message_id is not None:
            raise DeadLetterNotFound(message_id)
        return replayed

    def purge(self, stage: str | None = None) -> int:
        """Delete every dead letter (of one stage, or of all) for good; return how many."""
        purged = 0
        with self._connection() as connection:
            for queue in self._queues(stage):
                channel = connection.channel()
                try:
                    purged += channel.queue_purge(queue).method.message_count
                except pika.exceptions.ChannelClosedByBroker as closed:
                    if closed.reply_code != 404:
                        raise
                else:
                    channel.close()
        return purged

    def _send_again(self, message: Message) -> None:
        try:
            self.broker.enqueue(revived(message))
        except (dramatiq.errors.BrokerConnectionError, *BROKER_ERRORS) as error:
            raise BrokerUnavailable(type(error).__name__) from None

    def _queues(self, stage: str | None) -> list[str]:
        return [xq_name(self.settings.queue(name)) for name in ([stage] if stage else STAGES)]

    @contextmanager
    def _connection(self) -> Iterator[pika.BlockingConnection]:
        try:
            connection = pika.BlockingConnection(parameters(self.settings.broker_url, timeout=5))
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(type(error).__name__) from None
        try:
            yield connection
        except BROKER_ERRORS as error:
            raise BrokerUnavailable(type(error).__name__) from None
        finally:
            if connection.is_open:
                connection.close()


class _Taken:
    """Gets up to ``count`` messages of a queue unacknowledged; the ones not acked go back."""

    def __init__(self, channel, queue: str, available: int) -> None:
        self.channel, self.queue, self.available = channel, queue, available

    def __call__(self, limit: int) -> Iterator[tuple[int, bytes]]:
        for _ in range(min(limit, self.available)):
            method, _properties, body = self.channel.basic_get(self.queue, auto_ack=False)
            if method is None:
                return
            yield method.delivery_tag, body


@contextmanager
def _taking(connection: pika.BlockingConnection, queue: str) -> Iterator[_Taken]:
    channel = connection.channel()
    try:
        available = channel.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code != 404:  # no such queue: nothing ever died there
            raise
        yield _Taken(None, queue, 0)
        return
    try:
        yield _Taken(channel, queue, available)
    finally:
        if channel.is_open:
            channel.close()  # RabbitMQ requeues whatever was taken and not acknowledged


def _booking_id(args: Any) -> str | None:
    first = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(first, dict):  # reject_unanswered_booking(message, retries): the dead message itself
        return _booking_id(first.get("args"))
    try:
        return str(uuid.UUID(first)) if isinstance(first, str) else None
    except ValueError:
        return None


def _error(options: dict) -> str:
    error_type = options.get("error_type")
    if isinstance(error_type, str) and error_type:
        return error_type
    traceback = options.get("traceback")
    if isinstance(traceback, str) and traceback.strip():
        # Only the exception's class from the last line: its message may hold personal data.
        return traceback.strip().splitlines()[-1].split(":", 1)[0].strip()[:200] or "unknown"
    return "unknown"
