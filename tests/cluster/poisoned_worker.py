"""A worker whose processor dies (SIGKILL, no cleanup, nothing acknowledged) on every booking of
the patient ``CLINIC_TEST_POISON_PATIENT``: a message that kills its worker every time. Test only."""

from __future__ import annotations

import os
import signal
import sys

import dramatiq

from actors import worker
from clinic.config import PROCESS, actor_name
from clinic.store.models import Booking


def start() -> dramatiq.Broker:
    broker = worker.start()
    poison = os.environ["CLINIC_TEST_POISON_PATIENT"]
    processor = broker.get_actor(actor_name(PROCESS))
    process = processor.fn

    def process_or_die(booking_id: str) -> None:
        if Booking.get_by_id(booking_id).patient == poison:
            print(f"poison: booking {booking_id} kills worker process {os.getpid()}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        process(booking_id)

    processor.fn = process_or_die
    return broker
