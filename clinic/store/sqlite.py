"""SQLite as the clinic uses it: WAL, durable commits, and writers that queue instead of polling."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time

from playhouse.pool import PooledSqliteDatabase

#: Seconds a SQLite writer waits for another process's lock before giving up.
SQLITE_BUSY_TIMEOUT = 30

SQLITE_PRAGMAS = {
    # Readers never block the one writer, so the API and several workers share one file.
    "journal_mode": "wal",
    # FULL: a commit survives a power cut, not only a crash (an accepted booking is never lost).
    "synchronous": "full",
    "foreign_keys": 1,
}


class SqliteWriterQueue:
    """SQLite mixin: write transactions queue for the file's one writer lock instead of polling it.

    SQLite admits one writer per file; a writer that finds the lock taken sleeps in SQLite's busy
    handler (1, 2, 5, 10... ms between tries), which the benchmark's profile showed taking most of
    the API's time under load. Here a writer first takes a thread lock (its process's turn), then
    an exclusive ``flock`` on ``<database>.writer`` (the file's turn, across processes): both wake
    the next writer the moment the last one commits. The kernel drops the ``flock`` of a process
    that dies, and SQLite's busy timeout still guards any writer that does not use this class."""

    def __init__(self, *args, **kwargs):
        self._writer = threading.Lock()
        self._holder = threading.local()
        self._lock_file: int | None = None
        super().__init__(*args, **kwargs)

    def begin(self, *args, **kwargs):
        self._take_writer()
        try:
            return super().begin(*args, **kwargs)
        except BaseException:
            self._release_writer()
            raise

    def commit(self):
        try:
            return super().commit()
        finally:
            self._release_writer()

    def _set_pragmas(self, conn):
        """A new connection's pragmas, in the file's turn: the first connection to a new file
        switches it to WAL, which needs the file to itself, and SQLite answers "database is locked"
        at once, without its busy timeout, when another process opens the file meanwhile (of
        twelve processes starting together on a new file, ten times over, four died of it)."""
        if getattr(self._holder, "writing", False):  # this thread has the file's turn already
            return super()._set_pragmas(conn)
        self._take_writer()
        try:
            return super()._set_pragmas(conn)
        finally:
            self._release_writer()

    def rollback(self):
        try:
            return super().rollback()
        finally:
            self._release_writer()

    def _writer_file(self) -> int:
        if self._lock_file is None:  # opened once per process, after any fork
            path = os.devnull if self.database in ("", ":memory:") else f"{self.database}.writer"
            self._lock_file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_file

    def _take_writer(self) -> None:
        """The process's turn, then the file's (released by ``_release_writer``)."""
        self._writer.acquire()
        self._holder.writing = True
        try:
            fcntl.flock(self._writer_file(), fcntl.LOCK_EX)
        except BaseException:
            self._release_writer()
            raise

    def _release_writer(self) -> None:
        if getattr(self._holder, "writing", False):
            self._holder.writing = False
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._writer.release()


class ClinicSqliteDatabase(SqliteWriterQueue, PooledSqliteDatabase):
    """Pooled SQLite with one writer at a time per process."""


def open_sqlite(path: str, **options) -> ClinicSqliteDatabase:
    """A pooled SQLite database on ``path`` with the clinic's pragmas and writer queue."""
    return ClinicSqliteDatabase(
        path,
        # IMMEDIATE: a write transaction takes the lock when it begins, so two writers queue on
        # the busy timeout instead of one failing with "database is locked" on upgrade.
        lock_type="IMMEDIATE",
        pragmas={**SQLITE_PRAGMAS, "busy_timeout": SQLITE_BUSY_TIMEOUT * 1000},
        check_same_thread=False,  # a pooled connection serves one thread at a time, any thread
        max_connections=None,
        stale_timeout=3600,
        **options,
    )


class CommitWatcher:
    """Wakes a poller when another connection commits to the file: SQLite's ``PRAGMA data_version``
    changes then, and reading it touches no table (a few microseconds), so it can be read every
    couple of milliseconds where a query for new rows would cost far more."""

    def __init__(self, path: str, *, every: float = 0.002) -> None:
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.every = every
        self.seen = self._version()

    def _version(self) -> int:
        return self.connection.execute("PRAGMA data_version").fetchone()[0]

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Return True as soon as a commit is seen, False after ``timeout`` or once ``stop`` is set."""
        deadline = time.monotonic() + timeout
        while not stop.wait(self.every):
            version = self._version()
            if version != self.seen:
                self.seen = version
                return True
            if time.monotonic() >= deadline:
                return False
        return False
