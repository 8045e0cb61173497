"""The workers declare their queues on the real RabbitMQ the way Dramatiq means them to be."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, queue_stats, wait_until

STAGES = ("process", "confirm", "reject", "notify")
WEEK_MS = 7 * 24 * 3600 * 1000


def queues(namespace: str) -> dict[str, dict]:
    found = {}
    for name, queue in queue_stats("durable", "arguments").items():
        if name.startswith(f"{namespace}."):
            arguments = {key: value for key, _type, value in queue["arguments"]}
            found[name] = {"durable": queue["durable"], "arguments": arguments}
    return found


def test_the_four_queues_and_their_dead_letter_queues_exist_with_dramatiqs_arguments(clinic_env, namespace):
    worker = subprocess.Popen(
        [sys.executable, "-m", "clinic", "worker", *STAGES],
        env=clinic_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        declared = wait_until(lambda: len(q := queues(namespace)) == 12 and q, timeout=30, what="12 queues")
    finally:
        worker.terminate()
        worker.wait(30)
    for stage in STAGES:
        queue, delayed, dead = (f"{namespace}.{stage}{suffix}" for suffix in ("", ".DQ", ".XQ"))
        for name in (queue, delayed):
            assert declared[name]["durable"] is True
            assert declared[name]["arguments"] == {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            }
        assert declared[dead] == {"durable": True, "arguments": {"x-message-ttl": WEEK_MS}}
