"""The workers' composition root: ``dramatiq actors.worker:start`` builds the settings, broker,
database binding and collaborators of one worker process, then declares the actors on them."""

from __future__ import annotations

import logging

import dramatiq

from actors import webhooks
from actors.middleware import middleware_for
from actors.pipeline import declare
from clinic import bookings, logs, store
from clinic.availability import AvailabilitySystem
from clinic.broker.dispatch import rabbitmq_broker
from clinic.broker.notifications import Publisher
from clinic.broker.send_relay import SendRelay
from clinic.config import Settings
from clinic.secretbox import SecretBox


def start() -> dramatiq.Broker:
    """Called by Dramatiq's CLI in each worker process before it consumes."""
    # pika reports every dropped connection with tracebacks at ERROR; Dramatiq already says the
    # same in one line ("Consumer encountered a connection error") and reconnects.
    settings = Settings.from_env()
    if settings.log_format == "json":
        # Dramatiq was told --skip-logging (actors.dramatiq_cli); stderr is its pipe by now.
        logs.configure("json", flush_seconds=settings.log_flush_seconds)
    else:
        logs.batch_lines(settings.log_flush_seconds)  # Dramatiq's own handler, on its pipe
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    broker = rabbitmq_broker(settings, middleware_for(settings))
    dramatiq.set_broker(broker)
    store.connect(settings.database_url)
    # Next steps and notifications go out through one publisher thread whose confirms the
    # process's worker threads share; each still waits for its own before its message is acked.
    relay = SendRelay(settings, exchanges=(settings.exchange,))
    declare(
        broker,
        settings,
        calendar=AvailabilitySystem(settings.unavailability_rate, settings.confirm_delay),
        publisher=Publisher(settings.exchange, relay),
        send=relay.send,
        # The confirmations and rejections this process's threads make at once share one
        # transaction and one fsync; each message is still acked only after its own commit.
        books=bookings.Committing(store.GroupCommit()),
    )
    webhooks.declare(broker, settings, box=SecretBox.for_settings(settings))
    return broker
