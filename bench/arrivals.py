"""When each message reached a subscriber bound before the run: the finish line of both the
booking pipeline (``{ns}.notifications``) and the broker floor."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable

from bench.progress import Progress
from clinic.broker.notifications import subscribe


class Arrivals:
    """Records the first arrival (``time.monotonic()``, one clock for every process on Linux)
    of each ``booking_id`` published on ``exchange`` with one of ``keys``; duplicates are counted."""

    def __init__(self, broker_url: str, exchange: str, keys: Iterable[str]) -> None:
        self.broker_url, self.exchange, self.keys = broker_url, exchange, tuple(keys)
        self.first: dict[str, float] = {}
        self.statuses: dict[str, str] = {}
        self.duplicates = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"arrivals-{exchange}", daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"could not bind a subscriber to {self.exchange}: {self._error!r}")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            for _, body in subscribe(
                self.broker_url, self.exchange, self.keys, stop=self._stop.is_set, ready=self._ready.set
            ):
                key = str(body.get("booking_id"))
                if key in self.first:
                    self.duplicates += 1
                else:
                    self.first[key] = time.monotonic()
                    self.statuses[key] = str(body.get("status"))
        except BaseException as error:  # reported by wait_for: a dead subscriber must not look like a slow system
            self._error = error

    def wait_for(self, ids: Collection[str], *, timeout: float, label: str) -> int:
        """Wait, with a progress bar, until every id has arrived or ``timeout`` seconds pass;
        return how many are still missing."""
        progress = Progress(label, len(ids))
        deadline = time.monotonic() + timeout
        missing = len(ids)
        while time.monotonic() < deadline:
            missing = sum(1 for booking_id in ids if booking_id not in self.first)
            progress.update(len(ids) - missing)
            if not missing or self._error is not None:
                break
            time.sleep(0.2)
        progress.finish(f"{missing} missing" if missing else "all arrived")
        if self._error is not None:
            raise RuntimeError(f"the subscriber on {self.exchange} died: {self._error!r}")
        return missing
