"""The relay: hands every committed booking event to every channel, then marks it relayed.

The events (``booking_event`` rows) are written in the transaction of each status change; this
process reads the ones not relayed yet, sends the notifier its step for each final status (the
AMQP notification) and one ``deliver_webhook`` per matching webhook endpoint, and only then marks
the batch relayed, in one write. If the broker is down nothing is marked and the batch is sent
again once it is back: an event is relayed at least once, and every receiver drops duplicates
(notifications carry ``message_id``, a webhook delivery is one row per event and endpoint). Live
streams read the events from the database themselves (``clinic.events``)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable

from clinic import events, lifecycle, store, webhooks
from clinic.broker.dispatch import Dispatcher, rabbitmq_broker
from clinic.broker.send_relay import SendRelay
from clinic.config import Settings
from clinic.ops import process

logger = logging.getLogger("clinic.relay")

#: Seconds between looks at an idle event table when no commit wakes the relay sooner (on SQLite
#: and PostgreSQL one does at once; another database adds this latency, at worst).
INTERVAL = 0.05
BATCH = 500


def relay_once(settings: Settings, send: Callable[[lifecycle.Step], object], *, limit: int = BATCH) -> int:
    """Relay the oldest unrelayed events (up to ``limit``); return how many. Raises when a step
    cannot be sent: then nothing of the batch is marked, and it is sent again next time."""
    with store.database.connection_context():
        batch = events.unrelayed(limit)
        if not batch:
            return 0
        steps = [lifecycle.announced(row.status, booking) for row, booking in batch]
        steps += [lifecycle.deliver(delivery_id) for delivery_id in webhooks.fan_out(batch)]
    for step in steps:
        send(step)
    flush = getattr(send, "flush", None)
    if flush is not None and not flush():  # a SendRelay: wait for RabbitMQ's confirms of the batch
        raise TimeoutError("the broker did not confirm the batch")
    with store.database.connection_context():
        events.mark_relayed(row.id for row, _ in batch)
    return len(batch)


def run(
    settings: Settings,
    send: Callable[[lifecycle.Step], object],
    stop: threading.Event,
    idle: Callable[[float, threading.Event], object] | None = None,
) -> None:
    """Relay until ``stop`` is set: at once while there is a backlog; when idle, ``idle`` waits for
    the next commit (at most ``INTERVAL``), or the relay sleeps ``INTERVAL``."""
    idle = idle or (lambda timeout, stop: stop.wait(timeout))
    while not stop.is_set():
        try:
            relayed = relay_once(settings, send)
        except Exception as error:  # broker or database down: the events wait in the table
            logger.warning("relaying failed (%s); trying again in 1s", type(error).__name__)
            stop.wait(1.0)
            continue
        if relayed < BATCH:
            idle(INTERVAL, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="relay what is waiting once and exit")
    args = parser.parse_args(argv)
    # The relay's composition root: settings, logs, database, and a broker that only sends.
    settings, database = process.start()
    if args.once:
        send = Dispatcher(settings, rabbitmq_broker(settings)).send
        total = 0
        while relayed := relay_once(settings, send):
            total += relayed
        print(total)
        return 0
    stop = process.stop_on_signals()
    watcher = store.commit_watcher(database)
    relay = SendRelay(settings)
    if watcher is None:
        logger.info("relaying booking events every %.0f ms", INTERVAL * 1000)
    else:
        logger.info("relaying booking events as they are committed")
    run(settings, relay, stop, watcher.wait if watcher else None)
    relay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
