"""API keys for end-to-end tests, made the way an operator makes them: with ``clinic keys``."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support import REPO, Clinic, clinic_environment, delete_namespace


def create_key(env: dict[str, str], scope: str, name: str) -> str:
    """Run ``clinic keys create`` and return the token it prints (once)."""
    result = subprocess.run(
        [sys.executable, "-m", "clinic", "keys", "create", "--scope", scope, "--name", name],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def shared_clinic(tmp: Path, rabbitmq: str, keys: dict[str, str], **overrides: str) -> Iterator[Clinic]:
    """A ``clinic up`` in a namespace of its own, with keys (name -> scope) made before it starts;
    ``clinic.tokens`` maps each name to its token and ``clinic.env`` is its environment."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = clinic_environment(namespace, f"sqlite:///{tmp / 'clinic.db'}", **{"CLINIC_WORKER_THREADS": "2", **overrides})
    tokens = {name: create_key(env, scope, name) for name, scope in keys.items()}
    clinic = Clinic(env, tmp / "clinic.log").start()
    clinic.tokens = tokens
    try:
        yield clinic
    finally:
        clinic.stop()
        delete_namespace(rabbitmq, namespace)
