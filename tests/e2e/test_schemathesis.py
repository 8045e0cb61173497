"""Schemathesis, every check it has on by default (the stateful phase and ``ignored_auth``
included), against a real ``clinic up`` in both access modes: keys required, with the local key
given by ``--header`` (and again with a client and an admin key per security scheme, so the admin
endpoints are fuzzed past their 401); and open mode, with no key at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import http
from tests.support.keys import create_key

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# One tuning, not a check turned off: positive_data_acceptance expects 2xx for schema-valid
# requests, but a JSON schema cannot say "the same Idempotency-Key with another body", and the
# idempotency draft (like Stripe) answers that 422; nor can it say "a doctor's slot already asked
# for" or "outside the clinic's hours" (decided later) or that a client key cannot open /admin,
# or "a cursor this server gave". Only the FHIR view answers 400, for a search parameter it cannot
# use (FHIR's convention), so only its operations accept it. Every other check keeps its defaults.
ACCEPTED = '"2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"'
CONFIG = f"""
[checks.positive_data_acceptance]
expected-statuses = [{ACCEPTED}]

[[operations]]
include-path-regex = "^/fhir/"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400"]
"""
PER_SCHEME = """
[auth.openapi.clientKey]
bearer = "{client}"

[auth.openapi.adminKey]
bearer = "{admin}"
"""


@pytest.mark.parametrize("mode", ["client key by --header", "keys per scheme", "open access"])
def test_schemathesis_finds_no_failure_in_the_live_api(start_clinic, tmp_path, mode):
    open_access = mode == "open access"
    clinic = start_clinic(**({"CLINIC_OPEN_ACCESS": "1"} if open_access else {}))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    auth = ["--header", f"Authorization: Bearer {clinic.token}"] if mode == "client key by --header" else []
    if mode == "keys per scheme":
        admin = create_key(clinic.env, "admin", "fuzzer-ops")
        config.write_text(CONFIG + PER_SCHEME.format(client=clinic.token, admin=admin))
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"http://127.0.0.1:{clinic.port}/openapi.json",
            *auth,
            "--max-examples=50",
            # One worker: with several threads, hypothesis describing its lambdas (ast.parse) trips a
            # CPython 3.11 "AST constructor recursion depth mismatch" now and then.
            "--workers=1",
            "--request-timeout=10",
            # An event stream answers for minutes by design, so it is not a request-and-answer to
            # fuzz: its parameters and errors are proven by tests/e2e/test_events.py instead.
            "--exclude-path=/events",
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Stateful" in result.stdout, result.stdout[-3000:]  # the stateful phase ran
    assert http(clinic.port, "GET", "/health").status == 200
    clinic.stop()
    log = clinic.log_text()
    assert "Traceback" not in log
    assert "Unhandled" not in log
