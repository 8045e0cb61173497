"""The Dramatiq broker every actor binds to, built once per process from the environment.

This module must be imported before any module that declares an actor: ``@dramatiq.actor``
binds to the global broker at import time and would otherwise build a default one.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries, TimeLimit

from clinic import store
from clinic.config import Settings

#: Every actor is retried at most this many times after its first attempt.
MAX_RETRIES = 3


class DatabaseSession(Middleware):
    """Opens the database connection for each message and closes it afterwards (Peewee's
    connection-per-unit-of-work recipe), so no connection outlives a message or crosses threads."""

    def before_process_message(self, broker, message):
        store.database.connect(reuse_if_open=True)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if not store.database.is_closed():
            store.database.close()

    after_skip_message = after_process_message


class FailureRecord(Middleware):
    """Writes the failing exception's class into the message options (``error_type``), so the
    retry-exhausted handler and ``clinic dlq`` can tell why a message died without parsing a traceback.
    Listed after Retries: after-hooks run in reverse order, so this runs first."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            if isinstance(exception, dramatiq.Retry) and exception.__cause__ is not None:
                exception = exception.__cause__  # what made the actor ask for a retry
            kind = type(exception)
            message.options["error_type"] = f"{kind.__module__}.{kind.__qualname__}"


def middleware_for(settings: Settings) -> list[Middleware]:
    """Only what the actors use: a time limit, Retries (3 retries, the configured backoff) and
    our two. Dramatiq's AgeLimit, Callbacks, Pipelines, CurrentMessage and ShutdownNotifications
    serve options no actor here sets, and each costs a hook call per message."""
    return [
        TimeLimit(),
        Retries(
            max_retries=MAX_RETRIES,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=settings.retry_max_backoff_ms,
        ),
        FailureRecord(),
        DatabaseSession(),
    ]


def build_broker(settings: Settings, *, stub: bool = False) -> dramatiq.Broker:
    """The RabbitMQ broker with publisher confirms (or, for unit tests, its stub twin)."""
    if stub:
        return StubBroker(middleware=middleware_for(settings))
    return RabbitmqBroker(url=settings.broker_url, confirm_delivery=True, middleware=middleware_for(settings))
