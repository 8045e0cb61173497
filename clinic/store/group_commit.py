"""Group commit: the writes of many request threads committed together, one fsync for a batch.

With ``synchronous=FULL`` every SQLite commit waits for the disk, and the file has one writer at a
time, so requests that each commit on their own queue behind one another's fsync. Here each
request thread hands its write to one committer thread and waits; the committer runs whatever
has gathered in one transaction and commits once. A request still answers only after its own row
is committed: nothing is acknowledged that a power cut could take back."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from clinic.store.models import database

T = TypeVar("T")
logger = logging.getLogger("clinic.store")

#: Writes of one transaction, at most; more wait for the next.
BATCH_LIMIT = 128


class Commit(Protocol):
    """What runs a write in a transaction and returns its result once it is committed:
    :func:`in_transaction`, or a :class:`GroupCommit` shared by a process's threads."""

    def __call__(self, write: Callable[[], T], /) -> T: ...


def in_transaction(write: Callable[[], T]) -> T:
    """The plain way: the write in its own transaction, on the calling thread's connection."""
    with database.atomic():
        return write()


class _Write:
    __slots__ = ("write", "done", "result", "error")

    def __init__(self, write: Callable[[], Any]) -> None:
        self.write = write
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """``commit(write)`` runs ``write`` in a transaction shared with the writes of other threads
    and returns its result once that transaction is committed (or raises what the write raised).

    A write that fails does not fail its neighbours: the batch is rolled back and each of its
    writes is run again in a transaction of its own. So a write must be safe to run again after a
    rollback (an insert is), and it should be short: the others wait for it."""

    def __init__(self, *, batch_limit: int = BATCH_LIMIT) -> None:
        self.batch_limit = batch_limit
        self._queue: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Transactions committed and the writes in them, since the start (how much was shared).
        self.transactions = 0
        self.writes = 0

    def __call__(self, write: Callable[[], T]) -> T:
        pending = _Write(write)
        self._queue.put(pending)
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                    self._thread.start()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.batch_limit:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with database.connection_context():
                    self._commit(batch)
            except BaseException as error:  # a lone write failed, or the database is away: tell its waiters
                for pending in batch:
                    if not pending.done.is_set():
                        pending.error = error
                        pending.done.set()

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with database.atomic():
                results = [pending.write() for pending in batch]
        except Exception:
            if len(batch) == 1:
                raise
            for pending in batch:  # find the one at fault: each on its own
                try:
                    with database.atomic():
                        pending.result = pending.write()
                    self._count(1)
                except Exception as error:
                    pending.error = error
                pending.done.set()
            return
        self._count(len(batch))
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.set()

    def _count(self, writes: int) -> None:
        self.transactions += 1
        self.writes += writes
