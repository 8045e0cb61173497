"""PostgreSQL as the clinic uses it: every committed booking event wakes the relay at once.

A trigger on the event table sends ``NOTIFY`` (delivered when the inserting transaction commits,
never for one rolled back), and the relay waits on ``LISTEN``, PostgreSQL's own way for one
session to wake another, instead of polling the table."""

from __future__ import annotations

import select
import threading
import time

import peewee

#: The channel of the notice; the payload is empty (the relay reads the table itself).
CHANNEL = "clinic_booking_event"
#: Seconds a wake-up waits for more commits to gather.
GATHER = 0.002


def install_event_notice(database: peewee.Database, table: str) -> None:
    """Create or replace the trigger that notifies ``CHANNEL`` after any insert into ``table``."""
    database.execute_sql(
        f"CREATE OR REPLACE FUNCTION {CHANNEL}_notify() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    database.execute_sql(
        f"CREATE OR REPLACE TRIGGER {CHANNEL}_notify AFTER INSERT ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {CHANNEL}_notify()"
    )


class NoticeWatcher:
    """Waits for the next ``CHANNEL`` notice on a connection of its own (autocommit, listening)."""

    def __init__(self, database: peewee.PostgresqlDatabase) -> None:
        import psycopg2

        self.connection = psycopg2.connect(dbname=database.database, **database.connect_params)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """True as soon as a notice arrives; False after ``timeout`` or once ``stop`` is set (it is
        looked at every 0.25 s at most)."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.25))
            if readable:
                self.connection.poll()
                if self.connection.notifies:
                    # Let the commits of the next moment join: under load the relay then reads a
                    # batch per wake-up instead of one event (the SQLite watcher's 2 ms look does
                    # the same), at the cost of this much latency.
                    time.sleep(GATHER)
                    self.connection.poll()
                    self.connection.notifies.clear()
                    return True
        return False
