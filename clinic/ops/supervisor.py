"""Keeps a set of child processes running: restarts any that dies, stops all on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the supervisor's environment
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # quick deaths in a row, for the restart backoff
    restart_at: float = field(default=0.0)


class Supervisor:
    """Runs each child in its own session (so a terminal's Ctrl-C reaches only the supervisor,
    which then stops the children in order) and restarts a child that exits for any reason."""

    def __init__(
        self,
        children: Mapping[str, Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 30.0,
        poll_interval: float = 0.2,
        pass_fds: Sequence[int] = (),
        child_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        extra = child_env or {}
        self.children = [Child(name, list(argv), dict(extra.get(name, {}))) for name, argv in children.items()]
        self.env = dict(os.environ if env is None else env)
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.stopping = False
        self.pass_fds = tuple(pass_fds)  # inherited by every child (the API processes' listening socket)

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; return 0 after a clean stop."""
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._start(child)
            while not self.stopping:
                self._tend()
                time.sleep(self.poll_interval)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True

    def _start(self, child: Child) -> None:
        env = {**self.env, **child.env}
        child.process = subprocess.Popen(child.argv, env=env, start_new_session=True, pass_fds=self.pass_fds)
        child.started_at = time.monotonic()
        logger.info("started %s (pid %d)", child.name, child.process.pid)

    def _tend(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started_at > 30:
                    child.failures = 0
                continue
            # If the group's leader died alone (kill -9), its own children may live on: stop them
            # gently so that no orphan keeps consuming beside the replacement.
            _signal_group(child.process, signal.SIGTERM)
            child.failures += 1
            delay = min(0.5 * 2 ** (child.failures - 1), 10.0)
            logger.warning(
                "%s (pid %d) exited with %s; restarting in %.1fs", child.name, child.process.pid, code, delay
            )
            child.process, child.restart_at = None, now + delay

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            # Only the leader: dramatiq's main process forwards the signal to its workers itself,
            # and a worker that is signalled twice exits at once instead of finishing its message.
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0fs; killing it", child.name, self.stop_timeout)
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
        logger.info("all stopped")


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
