"""Optional (``--profile DIR``): py-spy samples the API alone under ``POST /book`` saturation, then the
API, one worker per stage and the events relay while the pipeline runs at saturation; the hottest
functions of each are summarised into the results. py-spy counts every thread that is not idle, so
time spent waiting in C (a SQLite lock, an fsync) shows; ``--profile-gil`` keeps only the thread
holding the GIL."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: Samples a second; py-spy reads the process from outside, so the cost to the target is small.
RATE = 100
TOP = 12


def py_spy() -> str | None:
    """py-spy from the virtualenv or the PATH (``pip install py-spy``), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """``with Profiler(dir, {"api": pid, ...}):`` records each pid until the block ends."""

    def __init__(self, directory: Path, targets: dict[str, int], *, gil: bool = False) -> None:
        self.directory, self.targets, self.gil = directory, targets, gil
        self.children: list[subprocess.Popen] = []

    def __enter__(self) -> Profiler:
        executable = py_spy()
        if executable is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self.targets.items():
            argv = [executable, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"]
            argv += ["--nonblocking", "--output", str(self.directory / f"{name}.txt")]
            if self.gil:  # only the thread holding the GIL: Python's own CPU, no waiting at all
                argv.append("--gil")
            self.children.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc) -> None:
        for child in self.children:
            child.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()

    def summary(self) -> dict[str, dict]:
        return {name: summarise(self.directory / f"{name}.txt") for name in self.targets}


def summarise(path: Path) -> dict:
    """The share of samples in which each function is on the stack (inclusive) and on top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        frames = [frame for frame in stack.split(";") if not frame.startswith("process ") and frame]
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            own[frames[-1]] += samples

    def top(counter: Counter[str]) -> list[list]:
        return [[frame, round(100 * n / total, 1)] for frame, n in counter.most_common(TOP)] if total else []

    return {"samples": total, "inclusive_pct": top(inclusive), "self_pct": top(own)}
