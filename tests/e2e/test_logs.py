"""CLINIC_LOG_FORMAT=json on a real ``clinic up``: every process writes one JSON object per line;
one booking's request id, kept from X-Request-ID, shows in the API's line and in the line of each
worker the request set going (process, confirm), and its booking id in those and in the notifier's,
which the relay starts from the event; a request without an id gets one made; no patient name is
logged."""

from __future__ import annotations

import json
import re

from clinic.config import STAGES
from tests.support import PRINTED_KEY, slot, wait_until

# What `clinic up` prints on purpose, for a person, before any log line: the first key.
ANNOUNCEMENT = ("No client key existed", "'Authorization: Bearer <key>'")


def log_lines(clinic) -> list[dict]:
    lines = []
    text = clinic.log_text()
    # The processes are writing while this reads: a last line without its newline is not whole yet.
    whole = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    for line in whole.splitlines():
        if not line.strip() or line.startswith(ANNOUNCEMENT) or PRINTED_KEY.fullmatch(line):
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line that is not one JSON object: {line[:300]!r}") from None
    return lines


def test_one_request_id_follows_a_booking_through_the_api_and_every_worker(start_clinic):
    clinic = start_clinic(CLINIC_LOG_FORMAT="json")
    answer = clinic.http(
        "POST", "/book", {"patient": "Ana Pérez", "slot": slot(10, 0)}, headers={"X-Request-ID": "desk-7f3a-0001"}
    )
    assert answer.status == 202 and answer.headers["x-request-id"] == "desk-7f3a-0001"
    booking_id = answer.json()["booking_id"]
    assert clinic.wait_final(booking_id)["status"] == "confirmed"

    def followed() -> list[dict]:
        found = [line for line in log_lines(clinic) if line.get("request_id") == "desk-7f3a-0001"]
        actors = {line.get("actor") for line in found}
        return found if {"process_booking", "confirm_booking"} <= actors else []

    trail = wait_until(followed, timeout=30, what="the workers' lines for the request id")
    api_lines = [line for line in trail if line["logger"] == "api.access"]
    assert [(line["message"].split()[:3], line["booking_id"]) for line in api_lines] == [
        (["POST", "/book", "202"], booking_id)
    ]
    workers = [line for line in trail if "actor" in line]
    assert {line["booking_id"] for line in workers} == {booking_id}
    assert {line["queue"] for line in workers} >= {
        f"{clinic.env['CLINIC_NAMESPACE']}.{s}" for s in ("process", "confirm")
    }
    by_booking = lambda: {line.get("actor") for line in log_lines(clinic) if line.get("booking_id") == booking_id}
    wait_until(lambda: "notify_booking" in by_booking(), timeout=30, what="the notifier's line for the booking")
    assert all({"time", "level", "logger", "message", "message_id"} <= line.keys() for line in workers)
    assert len({line["pid"] for line in trail}) >= 3  # the API and two worker processes

    made = clinic.http("GET", f"/booking/{booking_id}")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    everything = log_lines(clinic)
    assert {line["logger"] for line in everything} >= {
        "api.access",
        "actors",
        "clinic.ops.supervisor",
        "dramatiq.MainProcess",
        "clinic.relay",
    }
    assert "Ana" not in clinic.log_text() and "Pérez" not in clinic.log_text()


def test_the_lines_a_process_holds_are_written_when_it_stops(start_clinic):
    """Log lines leave in batches (CLINIC_LOG_FLUSH_SECONDS, here 5 s): whatever a process still
    holds when ``clinic up`` stops is written then, the API's at its exit and each worker's when
    Dramatiq shuts the worker down (its processes end without Python's exit handlers)."""
    clinic = start_clinic(CLINIC_LOG_FORMAT="json", CLINIC_LOG_FLUSH_SECONDS="5")
    booking_id = clinic.book().json()["booking_id"]
    assert clinic.wait_final(booking_id)["status"] == "confirmed"
    assert clinic.stop() == 0
    lines = [line for line in log_lines(clinic) if line.get("booking_id") == booking_id]
    access = [line["message"].split()[:3] for line in lines if line["logger"] == "api.access"]
    assert ["POST", "/book", "202"] in access
    assert {"process_booking", "confirm_booking"} <= {line.get("actor") for line in lines}
    # Dramatiq's own last line of each worker process comes after the last hook it calls.
    shut_down = [line for line in log_lines(clinic) if line["message"] == "Worker has been shut down."]
    assert len(shut_down) == len(STAGES)
