"""The benchmark's side of the load generator: start ``bench.load`` in its own process, show its
progress, return its result."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench import REPO
from bench.progress import Progress

#: Seconds a load run may take beyond its own duration bound before it is killed.
GRACE = 60.0


def drive(spec: dict, label: str) -> dict:
    """Run one load described by ``spec`` (see ``bench.load``) and return its result dict."""
    progress = Progress(label, spec["count"])
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.load"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    child.stdin.write(json.dumps(spec))
    child.stdin.close()
    deadline = time.monotonic() + spec["duration"] + GRACE
    result = None
    try:
        for line in child.stdout:
            if line.startswith("progress "):
                progress.update(int(line.split()[1]))
            elif line.startswith("result "):
                result = json.loads(line[7:])
            if time.monotonic() > deadline:
                break
    finally:
        if child.poll() is None:
            try:
                child.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if result is None:
        raise RuntimeError(f"the load generator for {label!r} gave no result (exit {child.returncode})")
    progress.update(result["requests"])
    progress.finish(f"{result['rps']:.0f}/s, p99 {result['p99_ms']} ms, {result['errors']} errors")
    return result
