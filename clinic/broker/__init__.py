"""The adapters to RabbitMQ: sending a pipeline step (``dispatch``), the notifications exchange
(``notifications``) and the dead-letter queues (``deadletters``).

The only part of ``clinic`` that knows Dramatiq and pika. It uses Dramatiq's own message format,
queue naming and broker, so nothing here restates what Dramatiq already defines.

``CLINIC_BROKER_URL`` may name several nodes of one RabbitMQ cluster (``;``-separated). Each
process puts them in its own random order, once, so that connections spread over the nodes; pika
tries a connection's parameters in that order, so a node that went away costs one refused
connection and the next node is used."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import TypeVar

import pika
import pika.exceptions

#: What a refused, dropped or timed-out connection or channel looks like to pika.
BROKER_ERRORS = (pika.exceptions.AMQPError, ConnectionError, OSError)
#: Seconds a connection waits while a node's memory or disk alarm blocks publishing before it
#: gives up (and the caller retries, maybe on another node), instead of waiting forever.
BLOCKED_CONNECTION_TIMEOUT = 30.0

T = TypeVar("T")


@functools.cache
def node_order(url: str) -> tuple[str, ...]:
    """The nodes of ``url`` (``;``-separated AMQP URLs) in this process's own random order."""
    urls = [part.strip() for part in url.split(";") if part.strip()]
    random.shuffle(urls)
    return tuple(urls)


def parameters(url: str, *, timeout: float | None = None) -> list[pika.URLParameters]:
    """Connection parameters for each node of ``url``, in this process's order (pika's
    ``BlockingConnection`` tries them in turn); with ``timeout``, one attempt per node that gives
    up after that many seconds (for answering a person: a health check, a listing)."""
    found = []
    for node in node_order(url):
        params = pika.URLParameters(node)
        params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
        if timeout is not None:
            params.connection_attempts = 1
            params.socket_timeout = timeout
            params.blocked_connection_timeout = timeout
        found.append(params)
    return found


def with_backoff(
    attempt: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    *,
    within: float = 10.0,
    first: float = 0.05,
    longest: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``attempt`` until it returns, sleeping ``first``, then twice as long each time (at most
    ``longest``) after each of ``errors``, and re-raise once ``within`` seconds have passed.

    While a cluster elects new queue leaders (about a second after a node dies) a publish is
    refused; an attempt that raised may still have been enqueued, which idempotent consumers
    absorb."""
    deadline = clock() + within
    pause = first
    while True:
        try:
            return attempt()
        except errors:
            if clock() + pause > deadline:
                raise
            sleep(pause)
            pause = min(pause * 2, longest)
