"""compose.yml is valid (checked by docker-compose itself; no engine needed) and runs the
same ``clinic`` commands the README documents."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support import REPO

WORKERS = {"processor": "process", "confirmer": "confirm", "rejector": "reject", "notifier": "notify"}


def compose_config(path) -> subprocess.CompletedProcess:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed: `make test` installs it (apt-get install docker-compose)")
    return subprocess.run([tool, "-f", str(path), "config", "-q"], capture_output=True, text=True, cwd=REPO)


def test_compose_file_is_valid():
    result = compose_config(REPO / "compose.yml")
    assert result.returncode == 0, result.stderr


def test_the_validator_does_reject_a_broken_file(tmp_path):
    broken = yaml.safe_load((REPO / "compose.yml").read_text())
    broken["services"]["api"]["restart"] = ["always"]  # must be a string
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert compose_config(path).returncode != 0


def test_each_worker_service_consumes_only_its_own_queue_and_restarts():
    services = yaml.safe_load((REPO / "compose.yml").read_text())["services"]
    assert services["rabbitmq"]["healthcheck"]["test"]
    assert services["api"]["command"][:2] == ["clinic", "api"]
    assert services["sweeper"]["command"] == ["clinic", "sweep"]
    for service, stage in WORKERS.items():
        assert services[service]["command"] == ["clinic", "worker", stage]
    for service in ["api", "sweeper", *WORKERS]:
        assert services[service]["restart"] == "unless-stopped"
        assert "CLINIC_DATABASE_URL" in services[service]["environment"]


def test_the_readme_documents_the_commands_compose_runs():
    readme = (REPO / "README.md").read_text()
    for stage in WORKERS.values():
        assert f"clinic worker {stage}" in readme
    assert "clinic api" in readme and "clinic sweep" in readme
