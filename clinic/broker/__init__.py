"""The adapters to RabbitMQ: sending a pipeline step (``dispatch``), the notifications exchange
(``notifications``) and the dead-letter queues (``deadletters``).

The only part of ``clinic`` that knows Dramatiq and pika. It uses Dramatiq's own message format,
queue naming and broker, so nothing here restates what Dramatiq already defines."""

from __future__ import annotations

import pika
import pika.exceptions

#: What a refused, dropped or timed-out connection or channel looks like to pika.
BROKER_ERRORS = (pika.exceptions.AMQPError, ConnectionError, OSError)


def parameters(url: str, *, timeout: float | None = None) -> pika.URLParameters:
    """Connection parameters for ``url``; with ``timeout``, one attempt that gives up after that
    many seconds (for answering a person: a health check, a listing), instead of pika's defaults."""
    params = pika.URLParameters(url)
    if timeout is not None:
        params.connection_attempts = 1
        params.socket_timeout = timeout
        params.blocked_connection_timeout = timeout
    return params
