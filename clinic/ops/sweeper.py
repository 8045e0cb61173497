"""The sweeper: re-sends ``process_booking`` for bookings pending longer than CLINIC_SWEEP_AFTER.

The database row is the record of an accepted booking; a message can be lost (the broker was
down when the API accepted it, or it vanished unconfirmed), so this closes the gap. Duplicates
are harmless: every actor is idempotent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import timedelta

from clinic import bookings, lifecycle, store
from clinic.broker.dispatch import Dispatcher, rabbitmq_broker
from clinic.config import Settings
from clinic.ops import process
from clinic.store import utcnow

logger = logging.getLogger("clinic.sweeper")


def sweep_once(settings: Settings, send: Callable[[lifecycle.Step], object]) -> int:
    """Re-send every stale pending booking once; return how many were sent."""
    now = utcnow()
    with store.database.connection_context():
        stale = bookings.claim_stale(now - timedelta(seconds=settings.sweep_after), now=now)
    for booking_id in stale:
        send(lifecycle.accepted(booking_id))
    if stale:
        logger.warning("re-sent %d booking(s) pending longer than %ss", len(stale), settings.sweep_after)
    return len(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="sweep once and exit")
    args = parser.parse_args(argv)
    # The sweeper's composition root: settings, logs, database, and a broker that only sends.
    settings, _ = process.start()
    send = Dispatcher(settings, rabbitmq_broker(settings)).send
    if args.once:
        print(sweep_once(settings, send))
        return 0
    stop = process.stop_on_signals()
    interval = max(1.0, min(settings.sweep_after / 4, 15.0))
    logger.info("sweeping every %.0fs for bookings pending longer than %ss", interval, settings.sweep_after)
    while not stop.wait(interval):
        try:
            sweep_once(settings, send)
        except Exception as error:  # broker or database down: try again next round
            logger.warning("sweep failed (%s); trying again in %.0fs", type(error).__name__, interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
