"""The API's in-process relay: pipeline steps leave the request path and go out in batches.

``POST /book`` answers once its booking is committed; the step for the processor is handed to a
:class:`SendRelay`, whose one thread publishes whatever has gathered on a channel in confirm mode
and keeps going without waiting for each message's confirm: RabbitMQ confirms many at once
(``multiple``), so one round trip and one wake-up cover a whole batch instead of one per booking.

Nothing here is the record of a booking; the committed row is. A message the relay still holds
when its process dies, or drops because the broker stayed away too long, is sent again by the
sweeper once the booking has been pending longer than ``CLINIC_SWEEP_AFTER``; a message sent
twice (re-published after a connection died before its confirm) is absorbed by the idempotent
actors. This is the pika authors' asynchronous publisher (``SelectConnection`` with publisher
confirms), with Dramatiq's message format and queue declarations."""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import NamedTuple

import pika
from dramatiq import Message
from dramatiq.errors import ConnectionClosed
from pika.adapters.select_connection import IOLoop

from clinic.broker import parameters
from clinic.broker.dispatch import declarations, message_for
from clinic.config import STAGES, Settings
from clinic.lifecycle import Step

logger = logging.getLogger("clinic.send_relay")

#: Messages held while the broker is away; beyond this the oldest are dropped (the sweeper has them).
HELD_LIMIT = 100_000
#: Seconds between attempts to reach a node again (each attempt tries the next node).
RECONNECT_DELAY = 0.5
#: Seconds ``send`` waits for a confirm: as long as a worker's blocking send retries through an election.
CONFIRM_TIMEOUT = 3.0


class Outgoing(NamedTuple):
    """One publish: to a queue (``exchange`` empty, ``routing_key`` the queue) or an exchange.
    ``key`` (the message id) lets a sender wait for its own confirm."""

    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    key: str | None


def dramatiq_outgoing(message: Message) -> Outgoing:
    """A Dramatiq message as its broker publishes it: persistent, to its queue."""
    properties = pika.BasicProperties(delivery_mode=2, message_id=message.message_id)
    return Outgoing("", message.queue_name, message.encode(), properties, message.message_id)


class SendRelay:
    """``relay(step)`` queues the step's Dramatiq message and returns at once; a background
    thread publishes it with a publisher confirm. ``send`` and ``publish`` wait for their own
    message's confirm; ``flush`` waits until everything handed over is confirmed; ``close``
    flushes, then disconnects. ``exchanges`` are declared (direct, durable) on each connection,
    like every stage's queues. With ``gather`` the thread publishes at most one round every that
    many seconds: a message handed over when the last round is older goes out at once, the
    messages of a busy moment wait for the next round and go out together. Each wake-up takes the
    GIL from the threads that hand messages over, which, woken for every message under load, cost
    the API more than the publishing itself. For fire-and-forget use (the API), not for a sender
    that waits."""

    def __init__(
        self,
        settings: Settings,
        *,
        held_limit: int = HELD_LIMIT,
        exchanges: tuple[str, ...] = (),
        gather: float = 0.0,
    ) -> None:
        self.settings = settings
        self.gather = gather
        self.held_limit = held_limit
        self.exchanges = exchanges
        self._ioloop = IOLoop()
        self._nodes = parameters(settings.broker_url)
        self._attempt = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: collections.deque[Outgoing] = collections.deque()
        self._unconfirmed: dict[int, Outgoing] = {}
        self._waiters: dict[str, list[threading.Event]] = {}  # by message id: set once it is confirmed
        self._wake_pending = False
        self._last_round = -math.inf  # time.monotonic() of the last round published
        self._thread: threading.Thread | None = None
        self._connection: pika.SelectConnection | None = None
        self._channel = None
        self._ready = False
        self._closing = False
        self._tag = 0
        #: Messages confirmed by RabbitMQ, and dropped for want of a broker, since the start.
        self.confirmed = 0
        self.dropped = 0

    # -- any thread -----------------------------------------------------------------------------

    def __call__(self, step: Step) -> None:
        """Hand the step over; nothing for a stop. Never blocks on the broker."""
        if step.stage is not None:
            self._hand_over(dramatiq_outgoing(message_for(self.settings, step)))

    def send(self, step: Step, *, timeout: float = CONFIRM_TIMEOUT) -> Message | None:
        """Hand the step over and wait for RabbitMQ's confirm of it (nothing for a stop): what a
        worker does before it acks the message it is processing. Many threads waiting at once
        share the relay's confirms. ConnectionClosed (Dramatiq's retry) if none comes in time;
        the step is still held then and goes out later, which the idempotent actors absorb."""
        if step.stage is None:
            return None
        message = message_for(self.settings, step)
        self._hand_over_and_wait(dramatiq_outgoing(message), timeout)
        return message

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties, *, timeout: float
    ) -> None:
        """Publish to an exchange and wait for the confirm (``properties.message_id`` is required);
        ConnectionClosed if none comes within ``timeout``."""
        self._hand_over_and_wait(Outgoing(exchange, routing_key, body, properties, properties.message_id), timeout)

    def _hand_over_and_wait(self, outgoing: Outgoing, timeout: float) -> None:
        confirmed = threading.Event()
        with self._lock:
            self._waiters.setdefault(outgoing.key, []).append(confirmed)
        self._hand_over(outgoing)
        if not confirmed.wait(timeout):
            with self._lock:
                waiting = self._waiters.get(outgoing.key, [])
                if confirmed in waiting:
                    waiting.remove(confirmed)
            raise ConnectionClosed(TimeoutError(f"RabbitMQ did not confirm within {timeout:g}s"))

    def _hand_over(self, message: Outgoing) -> None:
        with self._lock:
            if len(self._waiting) >= self.held_limit:
                self._waiting.popleft()
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    logger.warning("broker away: dropped %d held message(s); the sweeper sends them", self.dropped)
            self._waiting.append(message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="send-relay", daemon=True)
                self._thread.start()
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            self._ioloop.add_callback_threadsafe(self._publish_soon)

    @property
    def held(self) -> int:
        """Messages handed over and not confirmed yet."""
        with self._lock:
            return len(self._waiting) + len(self._unconfirmed)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every message handed over so far is confirmed; False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._waiting or self._unconfirmed:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._changed.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush (up to ``timeout``), then close the connection and end the thread."""
        if self._thread is None:
            return
        if not self.flush(timeout):
            logger.warning("closing with %d message(s) unconfirmed; the sweeper sends them", self.held)
        self._closing = True
        self._ioloop.add_callback_threadsafe(self._shut_down)
        self._thread.join(timeout)

    # -- the relay's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self._connect()
        self._ioloop.start()

    def _connect(self) -> None:
        if self._closing:
            return
        node = self._nodes[self._attempt % len(self._nodes)]
        self._attempt += 1
        self._connection = pika.SelectConnection(
            node,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_lost,
            on_close_callback=self._on_connection_lost,
            custom_ioloop=self._ioloop,
        )

    def _on_connection_open(self, connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self._tag = 0  # a channel numbers its deliveries from 1
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _: self._declare(self._queues()))

    def _queues(self) -> list[tuple[str, dict]]:
        """Every stage's queue, ``.DQ`` and ``.XQ``, declared as the workers declare them: a message
        to a queue that does not exist yet would be confirmed and lost."""
        found = []
        for stage in STAGES:
            queue = self.settings.queue(stage)
            found += declarations(queue, self.settings.queue_type, self.settings.delivery_limit)
        return found

    def _declare(self, remaining: list[tuple[str, dict]]) -> None:
        if not remaining:
            self._declare_exchanges(list(self.exchanges))
            return
        (name, arguments), rest = remaining[0], remaining[1:]
        self._channel.queue_declare(name, durable=True, arguments=arguments, callback=lambda _: self._declare(rest))

    def _declare_exchanges(self, remaining: list[str]) -> None:
        if not remaining:
            self._ready = True
            self._publish_waiting()
            return
        name, rest = remaining[0], remaining[1:]
        callback = lambda _: self._declare_exchanges(rest)  # noqa: E731
        self._channel.exchange_declare(name, exchange_type="direct", durable=True, callback=callback)

    def _publish_soon(self) -> None:
        wait = self._last_round + self.gather - time.monotonic()
        if wait > 0:
            self._ioloop.call_later(wait, self._publish_waiting)
        else:
            self._publish_waiting()

    def _publish_waiting(self) -> None:
        with self._lock:
            self._wake_pending = False
            if not self._ready:
                return
            self._last_round = time.monotonic()
            batch, self._waiting = self._waiting, collections.deque()
            for message in batch:
                self._tag += 1
                self._unconfirmed[self._tag] = message
        for out in batch:
            # A step's queue must exist (a publish to none is confirmed and lost: mandatory makes
            # RabbitMQ return it); an exchange with no subscriber bound is normal.
            mandatory = not out.exchange
            self._channel.basic_publish(out.exchange, out.routing_key, out.body, out.properties, mandatory)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        with self._lock:
            settled = self._settle(method.delivery_tag, method.multiple)
            if isinstance(method, pika.spec.Basic.Nack):  # RabbitMQ could not take them: again
                self._waiting.extendleft(reversed(settled))
                retry = True
            else:
                self.confirmed += len(settled)
                for out in settled:
                    for waiter in self._waiters.pop(out.key, ()) if out.key is not None else ():
                        waiter.set()
                retry = False
            self._changed.notify_all()
        if retry:
            self._ioloop.call_later(RECONNECT_DELAY, self._publish_waiting)

    def _settle(self, tag: int, multiple: bool) -> list[Outgoing]:
        """Take the confirmed messages out of the unconfirmed ones (tags ascend in the dict's order)."""
        if not multiple:
            return [self._unconfirmed.pop(tag)] if tag in self._unconfirmed else []
        settled = []
        for held in self._unconfirmed:
            if held > tag:
                break
            settled.append(held)
        return [self._unconfirmed.pop(held) for held in settled]

    def _on_return(self, channel, method, properties, body: bytes) -> None:
        """A message no queue took (a queue deleted under us): declare again and send it again."""
        logger.warning("a message to %s found no queue; declaring the queues again", method.routing_key)
        with self._lock:
            returned = Outgoing(method.exchange, method.routing_key, body, properties, properties.message_id)
            self._waiting.appendleft(returned)
            self._ready = False
        self._declare(self._queues())

    def _on_channel_closed(self, channel, reason) -> None:
        self._ready = False
        self._channel = None
        connection = self._connection
        if connection is not None and connection.is_open and not self._closing:
            logger.warning("the relay's channel closed (%s); opening another", reason)
            self._requeue_unconfirmed()
            self._ioloop.call_later(RECONNECT_DELAY, lambda: self._reopen_channel(connection))

    def _reopen_channel(self, connection) -> None:
        if connection.is_open and not self._closing:
            self._on_connection_open(connection)

    def _on_connection_lost(self, connection, reason) -> None:
        self._ready = False
        self._channel = None
        self._requeue_unconfirmed()
        if self._closing:
            self._ioloop.stop()
            return
        logger.warning("the relay lost the broker (%s); trying the next node", type(reason).__name__)
        self._ioloop.call_later(RECONNECT_DELAY, self._connect)

    def _requeue_unconfirmed(self) -> None:
        """Messages whose confirm never came go out again first (a duplicate is harmless)."""
        with self._lock:
            unconfirmed = [self._unconfirmed[t] for t in sorted(self._unconfirmed)]
            self._unconfirmed.clear()
            self._waiting.extendleft(reversed(unconfirmed))

    def _shut_down(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closed or connection.is_closing):
            connection.close()
        else:
            self._ioloop.stop()
