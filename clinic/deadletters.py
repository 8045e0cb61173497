"""Dead letters: the messages Dramatiq gave up on, in each stage's ``{ns}.<stage>.XQ``.

Listing takes each message without acknowledging it and lets RabbitMQ requeue it when the
channel closes, so nothing is removed. Replay republishes a message, its retry count reset, to
its stage's queue with publisher confirms, and only then acknowledges the dead copy. Dramatiq
keeps a dead letter for 7 days (the XQ's ``x-message-ttl``).

What is shown is ids and the error's class: a traceback may quote a patient's name, so it is
never shown.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import pika.exceptions

from clinic.config import STAGES, Settings
from clinic.errors import BrokerUnavailable, DeadLetterNotFound, InvalidField

BROKER_ERRORS = (pika.exceptions.AMQPError, ConnectionError, OSError)
#: Dramatiq's ``x-message-ttl`` on every XQ: a dead letter older than this is gone.
RETENTION_DAYS = 7
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
    stage = queue.removesuffix(".XQ").rsplit(".", 1)[-1] if isinstance(queue, str) else None
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


def dead_letter_queue(settings: Settings, stage: str) -> str:
    return f"{settings.queue(stage)}.XQ"


def describe(queue: str, body: bytes) -> DeadLetter:
    """What may be shown of one dead message: ids, actor, retries and the error's class."""
    try:
        message = json.loads(body)
        options = message.get("options") or {}
        actor = str(message.get("actor_name", "?"))
        message_id = str(message.get("message_id", "?"))
        args = message.get("args") or []
    except (ValueError, AttributeError, TypeError):
        return DeadLetter(queue, "?", "?", None, 0, "undecodable message", None)
    retries = options.get("retries", 0)
    stamp = message.get("message_timestamp")
    return DeadLetter(
        queue=queue,
        message_id=message_id,
        actor=actor,
        booking_id=_booking_id(args),
        retries=retries if isinstance(retries, int) else 0,
        error=_error(options),
        enqueued_at=datetime.fromtimestamp(stamp / 1000, UTC).isoformat() if isinstance(stamp, int) else None,
    )


def revived(body: bytes, queue: str) -> bytes:
    """The message as it is sent again: to its stage's queue, as if never tried."""
    message = json.loads(body)
    options = {k: v for k, v in (message.get("options") or {}).items() if k not in _ATTEMPT_OPTIONS}
    message.update(queue_name=queue, options={**options, "retries": 0})
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


class DeadLetters:
    """The dead-letter queues of one namespace on the broker."""

    def __init__(self, settings: Settings, *, limit: int = LIMIT) -> None:
        self.settings = settings
        self.limit = limit

    def list(self, stage: str | None = None) -> list[DeadLetter]:
        """Every dead letter (of one stage, or of all), oldest first per queue; none is removed."""
        found: list[DeadLetter] = []
        with self._connection() as connection:
            for queue in self._queues(stage):
                with _taking(connection, queue) as taken:
                    found.extend(describe(queue, body) for _tag, body in taken(self.limit))
        return found

    def replay(self, *, stage: str | None = None, message_id: str | None = None) -> list[DeadLetter]:
        """Send the dead letter ``message_id`` (or, without one, all of them) back to its queue."""
        replayed: list[DeadLetter] = []
        with self._connection() as connection:
            for queue in self._queues(stage):
                original = queue.removesuffix(".XQ")
                with _taking(connection, queue, confirm=True) as taken:
                    for tag, body in taken(self.limit):
                        letter = describe(queue, body)
                        if letter.actor == "?" or message_id not in (None, letter.message_id):
                            continue
                        taken.channel.basic_publish(
                            exchange="",
                            routing_key=original,
                            body=revived(body, original),
                            properties=pika.BasicProperties(delivery_mode=2),
                            mandatory=True,
                        )
                        taken.channel.basic_ack(tag)
                        replayed.append(letter)
                        if message_id is not None:
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

    def _queues(self, stage: str | None) -> list[str]:
        return [dead_letter_queue(self.settings, name) for name in ([stage] if stage else STAGES)]

    @contextmanager
    def _connection(self) -> Iterator[pika.BlockingConnection]:
        parameters = pika.URLParameters(self.settings.broker_url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 5
        parameters.blocked_connection_timeout = 5
        try:
            connection = pika.BlockingConnection(parameters)
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
def _taking(connection: pika.BlockingConnection, queue: str, *, confirm: bool = False) -> Iterator[_Taken]:
    channel = connection.channel()
    try:
        available = channel.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code != 404:  # no such queue: nothing ever died there
            raise
        yield _Taken(None, queue, 0)
        return
    if confirm:
        channel.confirm_delivery()
    try:
        yield _Taken(channel, queue, available)
    finally:
        if channel.is_open:
            channel.close()  # RabbitMQ requeues whatever was taken and not acknowledged


def _booking_id(args: Any) -> str | None:
    first = args[0] if isinstance(args, list) and args else None
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
