"""A plain progress bar on stderr: redrawn in place on a terminal, one line per phase otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    """``Progress("pipeline", total)``; call ``update(done)`` as often as you like, then ``finish()``."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, unit: str = "") -> None:
        self.label, self.total, self.unit = label, max(1, total), unit
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.drawn_at = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.live and now - self.drawn_at >= 0.1:  # 10 redraws a second cost nothing
            self.drawn_at = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def finish(self, note: str = "") -> None:
        line = self._line(time.monotonic()) + (f"  {note}" if note else "")
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()

    def _line(self, now: float) -> str:
        share = min(1.0, self.done / self.total)
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        return f"{self.label:<28} [{bar}] {self.done:>6}/{self.total:<6}{self.unit} {now - self.started:6.1f}s"
