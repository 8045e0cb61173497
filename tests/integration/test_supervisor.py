"""The supervisor with real child processes (``sleep``), in a real process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tests.support import _parent, _processes, wait_until

SUPERVISED = textwrap.dedent(
    """
    import sys
    from clinic.ops.supervisor import Supervisor
    sys.exit(Supervisor({"one": ["sleep", "300"], "two": ["sleep", "301"]}, stop_timeout=5).run())
    """
)


def children(pid: int) -> dict[str, int]:
    return {cmd.split()[1]: child for child, cmd in _processes() if _parent(child) == pid and cmd.startswith("sleep")}


def test_a_child_killed_with_sigkill_is_started_again_and_sigterm_stops_everything():
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISED])
    try:
        first = wait_until(lambda: len(c := children(supervisor.pid)) == 2 and c, timeout=10, what="two children")
        os.kill(first["300"], signal.SIGKILL)
        again = wait_until(
            lambda: (c := children(supervisor.pid)).get("300") not in (None, first["300"]) and c,
            timeout=10,
            what="the killed child to be restarted",
        )
        assert again["301"] == first["301"]  # the other child was left alone

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
        for pid in again.values():
            assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
