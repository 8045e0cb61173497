"""The workers' Dramatiq middleware: only what the actors use."""

from __future__ import annotations

import logging
import time

import dramatiq
from dramatiq.middleware import Middleware, Retries, TimeLimit

from clinic import logs, store
from clinic.config import Settings
from clinic.errors import qualified_name
from clinic.lifecycle import MAX_RETRIES


class DatabaseSession(Middleware):
    """A database connection for each message, given back afterwards (``store.open_session``)."""

    def before_process_message(self, broker, message):
        store.open_session()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        store.close_session()

    after_skip_message = after_process_message


class LogContext(Middleware):
    """Each message's log lines carry its ids (``clinic.logs``): the request id it came with (and
    passes on to the messages it sends), its booking, message id, actor and queue. One line per
    message says how it ended, so every process a booking went through shows in one grep."""

    logger = logging.getLogger("actors")

    def before_process_message(self, broker, message):
        first = message.args[0] if message.args else None
        booking_id = first if isinstance(first, str) else None
        self._tokens[message.message_id] = logs.bind(
            request_id=message.options.get("request_id"),
            booking_id=booking_id,
            message_id=message.message_id,
            actor=message.actor_name,
            queue=message.queue_name,
        )
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        tokens = self._tokens.pop(message.message_id, None)
        started = self._started.pop(message.message_id, None)
        if tokens is None:
            return
        elapsed = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        if exception is None:
            self.logger.info("%s done in %.1fms", message.actor_name, elapsed)
        else:
            cause = exception.__cause__ if isinstance(exception, dramatiq.Retry) and exception.__cause__ else exception
            self.logger.warning("%s failed in %.1fms (%s)", message.actor_name, elapsed, type(cause).__name__)
        logs.unbind(tokens)

    after_skip_message = after_process_message

    def after_worker_shutdown(self, broker, worker):
        # A worker process ends without logging.shutdown, and Dramatiq closes the pipe its lines
        # leave by right after this hook and a last line or two: from here on, lines go at once.
        logs.write_at_once()

    def __init__(self) -> None:
        self._tokens: dict[str, list] = {}
        self._started: dict[str, float] = {}


class FailureRecord(Middleware):
    """Writes the failing exception's class into the message options (``error_type``), so the
    retry-exhausted step and the dead-letter listing can tell why a message died without
    parsing a traceback. Listed after Retries: after-hooks run in reverse order, so this runs first."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is not None:
            if isinstance(exception, dramatiq.Retry) and exception.__cause__ is not None:
                exception = exception.__cause__  # what made the actor ask for a retry
            message.options["error_type"] = qualified_name(type(exception))


def middleware_for(settings: Settings) -> list[Middleware]:
    """A time limit, Retries (``MAX_RETRIES``, the configured backoff) and our two; with
    ``CLINIC_WORKER_METRICS_PORT``, Dramatiq's Prometheus middleware too (messages, errors,
    retries, dead letters and durations per actor, on the group's port). Dramatiq's AgeLimit,
    Callbacks, Pipelines, CurrentMessage and ShutdownNotifications serve options no actor here
    sets, and each costs a hook call per message."""
    extra: list[Middleware] = []
    if settings.worker_metrics_port is not None:
        # Imported only now: the module reads its port and directory from the environment at import.
        from dramatiq.middleware.prometheus import Prometheus

        extra.append(Prometheus())
    return [
        *extra,
        TimeLimit(),
        Retries(
            max_retries=MAX_RETRIES,
            min_backoff=settings.retry_min_backoff_ms,
            max_backoff=settings.retry_max_backoff_ms,
        ),
        FailureRecord(),
        DatabaseSession(),
        LogContext(),
    ]
