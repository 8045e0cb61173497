"""``clinic api --processes N``: N waitress processes on one socket their supervisor bound, and
a namespace that meets the other queue type stops with a message that says so."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO, _parent, _processes, free_port, http, wait_until
from tests.support.keys import bearer, create_key


def api_processes(supervisor: int) -> list[int]:
    return [pid for pid, cmd in _processes() if "api.serve" in cmd and "--fd" in cmd and _parent(pid) == supervisor]


@contextlib.contextmanager
def three_api_processes(env: dict[str, str], log_path: Path, port: int) -> Iterator[subprocess.Popen]:
    """``clinic api --processes 3`` on ``port``, once all three serve; stopped by SIGTERM after."""
    log = open(log_path, "wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "clinic", "api", "--port", str(port), "--processes", "3"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        serving = lambda: log_path.read_text().count(f"Serving on http://127.0.0.1:{port}") == 3
        wait_until(serving, timeout=30, what="three processes serving the one port")
        yield parent
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0
        log.close()


def test_several_api_processes_share_one_port_and_a_killed_one_is_replaced(clinic_env, tmp_path):
    port = free_port()
    with three_api_processes(clinic_env, tmp_path / "api.log", port) as parent:
        children = wait_until(lambda: len(api_processes(parent.pid)) == 3 and api_processes(parent.pid), timeout=30)
        assert _answers(port)

        os.kill(children[0], signal.SIGKILL)
        statuses = [http(port, "GET", "/doctors").status for _ in range(50)]  # the others keep serving
        assert statuses == [200] * 50
        wait_until(lambda: len(api_processes(parent.pid)) == 3, timeout=30, what="the killed process's replacement")
    assert api_processes(parent.pid) == []


def doctors_answered(page: bytes) -> float:
    """``clinic_http_requests_total`` for ``GET /doctors`` answered 200, read with Prometheus' parser."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(page.decode())
        for sample in family.samples
        if sample.name == "clinic_http_requests_total"
        and (sample.labels.get("route"), sample.labels.get("status")) == ("/doctors", "200")
    )


def test_any_of_several_api_processes_reports_the_requests_of_them_all(clinic_env, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {**clinic_env, "CLINIC_METRICS_PORT": str(metrics_port)}
    with three_api_processes(env, tmp_path / "api.log", port):
        assert [http(port, "GET", "/doctors").status for _ in range(60)] == [200] * 60  # spread over them
        # The keyless port is served by whichever process bound it first; it counts all three.
        assert doctors_answered(http(metrics_port, "GET", "/metrics").body) == 60
        admin = create_key(env, "admin", "ops")
        for _ in range(6):  # each scrape is answered by whichever process accepts it
            page = http(port, "GET", "/metrics", headers=bearer(admin)).body
            assert doctors_answered(page) == 60


def test_a_namespace_of_classic_queues_started_as_quorum_stops_saying_so(clinic_env, rabbitmq):
    declared = subprocess.run(
        [sys.executable, "-m", "clinic", "dlq", "list"], env=clinic_env, cwd=REPO, capture_output=True, timeout=60
    )
    assert declared.returncode == 0
    from clinic.broker.dispatch import rabbitmq_broker
    from clinic.config import Settings

    settings = Settings.from_env(clinic_env)
    rabbitmq_broker(settings).verify_queues(settings.queues)  # classic, as a single node runs today

    result = subprocess.run(
        [sys.executable, "-m", "clinic", "worker", "process"],
        env={**clinic_env, "CLINIC_QUEUE_TYPE": "quorum"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CLINIC_QUEUE_TYPE is quorum" in result.stderr and "declared as a classic queue" in result.stderr
    assert "inequivalent" not in result.stderr


def _answers(port: int) -> bool:
    try:
        return http(port, "GET", "/health", timeout=2).status == 200
    except OSError:
        return False
