"""Schemathesis, every check it has on by default, against a real ``clinic up`` with keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import Clinic, http
from tests.support.keys import create_key

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# One tuning, not a check turned off: positive_data_acceptance expects 2xx for schema-valid
# requests, but a JSON schema cannot say "the same Idempotency-Key with another body", and the
# idempotency draft (like Stripe) answers that 422. Schemathesis's coverage phase sends one key
# with many bodies, so 422 joins the statuses it accepts; every other check keeps its defaults.
CONFIG = """
[auth.openapi.clientKey]
bearer = "{client}"

[auth.openapi.adminKey]
bearer = "{admin}"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def test_schemathesis_finds_no_failure_in_the_live_api(clinic_env, tmp_path):
    client, admin = create_key(clinic_env, "client", "fuzzer"), create_key(clinic_env, "admin", "fuzzer-ops")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(client=client, admin=admin))
    clinic = Clinic(clinic_env, tmp_path / "clinic.log").start()
    try:
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(config),
                "run",
                f"http://127.0.0.1:{clinic.port}/openapi.json",
                "--max-examples=50",
                "--workers=4",
                "--request-timeout=10",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
        assert http(clinic.port, "GET", "/health").status == 200
    finally:
        clinic.stop()
    log = clinic.log_text()
    assert "Traceback" not in log
    assert "Unhandled" not in log
