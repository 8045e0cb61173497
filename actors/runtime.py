"""This process's settings, broker and collaborators, shared by the actor modules."""

from __future__ import annotations

import logging
import os

import dramatiq

from actors.broker import build_broker
from clinic import store
from clinic.availability import AvailabilitySystem
from clinic.config import Settings
from clinic.notifications import Publisher

# pika reports every dropped connection with tracebacks at ERROR; Dramatiq already says the same
# in one line ("Consumer encountered a connection error") and reconnects.
logging.getLogger("pika").setLevel(logging.CRITICAL)

settings = Settings.from_env()
broker = build_broker(settings, stub=os.environ.get("CLINIC_STUB_BROKER") == "1")
dramatiq.set_broker(broker)
store.connect(settings.database_url)
availability = AvailabilitySystem(settings.unavailability_rate)
publisher = Publisher(settings.broker_url, settings.exchange)
