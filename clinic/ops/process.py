"""What the relay and the sweeper share as processes of their own: the first steps of their
composition root, and a stop on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

import peewee

from clinic import logs, store
from clinic.config import Settings


def start() -> tuple[Settings, peewee.Database]:
    """Settings from the environment, the log format, and the database bound. pika reports a
    dropped connection with tracebacks at ERROR; these processes say it in one line themselves."""
    settings = Settings.from_env()
    logs.configure(settings.log_format, flush_seconds=settings.log_flush_seconds)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    return settings, store.connect(settings.database_url)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a loop to stop cleanly at its next turn."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
