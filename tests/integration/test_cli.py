"""The ``clinic`` command: help everywhere, errors that name the option or the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clinic.config import Settings
from clinic.ops.cli import api_argv, worker_argv
from tests.support import REPO

COMMANDS = ["up", "api", "worker", "subscribe", "init-db", "sweep"]


def clinic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clinic", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = clinic(command, "--help")
    assert result.returncode == 0
    assert f"clinic {command}" in result.stdout


@pytest.mark.parametrize(
    "args, named",
    [
        (["up", "--port", "eighty"], "--port"),
        (["api", "--port", "70000"], "--port"),
        (["worker", "billing"], "billing"),
        (["subscribe", "refunded"], "refunded"),
        (["reboot"], "reboot"),
    ],
)
def test_a_bad_option_is_refused_naming_it(args, named):
    result = clinic(*args)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_is_refused_naming_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLINIC_SLOT_MINUTES": "often", "CLINIC_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = clinic("init-db", env=env)
    assert result.returncode == 2
    assert "CLINIC_SLOT_MINUTES" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_db_is_safe_to_run_twice(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLINIC_DATABASE_URL": f"sqlite:///{tmp_path}/clinic.db"}
    assert clinic("init-db", env=env).returncode == 0
    second = clinic("init-db", env=env)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "clinic.db").exists()


def test_the_pieces_run_as_the_documented_commands():
    settings = Settings.from_env({"CLINIC_NAMESPACE": "east"})
    assert api_argv(settings, "0.0.0.0", 8000)[1:] == [
        "-m",
        "api.serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--app",
        "api.app:get_app",
    ]
    argv = worker_argv(settings, ["confirm"])
    assert argv[1:4] == ["-m", "actors.dramatiq_cli", "actors.worker:start"]  # Dramatiq's CLI, logs set up first
    assert argv[argv.index("--queues") + 1 :] == ["east.confirm"]
