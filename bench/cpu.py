"""CPU time spent by each part of the system during a phase (utime + stime from /proc), so a
reader can tell a part that computes from a part that waits, and who owns the machine's cores."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process so far (0 once it is gone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return 0.0


def pids_named(name: str) -> list[int]:
    """Processes whose command name (``/proc/PID/comm``) is ``name``, e.g. RabbitMQ's ``beam.smp``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


class CpuMeter:
    """``with CpuMeter(groups) as meter: ...`` then ``meter.result(units)``: CPU milliseconds per unit of
    work for each named group of processes, and the share of the machine's cores used in all.
    ``groups`` maps a name to a function listing its pids (asked at the start and at the end)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.spent: dict[str, float] = {}
        self.elapsed = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def __enter__(self) -> CpuMeter:
        self.before, self.started = self._sample(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        after, self.elapsed = self._sample(), time.monotonic() - self.started
        self.spent = {
            name: sum(seconds - self.before[name].get(pid, 0.0) for pid, seconds in after[name].items())
            for name in self.groups
        }

    def result(self, units: int, extra: dict[str, float] | None = None) -> dict:
        """CPU ms per unit for each group (plus ``extra`` CPU seconds measured elsewhere, such as the
        load generator's own), and how many of the machine's cores were busy on average."""
        spent = {**self.spent, **(extra or {})}
        per_unit = {name: round(1000 * seconds / units, 3) if units else None for name, seconds in spent.items()}
        busy = sum(spent.values()) / self.elapsed if self.elapsed else 0.0
        return {"ms_per_unit": per_unit, "cores_busy": round(busy, 2), "cores": os.cpu_count()}
