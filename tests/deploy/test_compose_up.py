"""compose.yml, run for real: the images build without a registry or a package index, the services
come up in order, a booking is confirmed, and a worker that crashes is restarted by its restart
policy without losing the messages it held."""

from __future__ import annotations

import pytest

from tests.support import slot, wait_until
from tests.support.compose import ComposeProject
from tests.support.docker import Dockerd

pytestmark = pytest.mark.docker

#: A quick pipeline, but a confirmer that holds each message a few seconds, so the kill below
#: lands while it holds some unacknowledged.
PIPELINE = {
    "CLINIC_CONFIRM_DELAY": "4-6",
    "CLINIC_UNAVAILABILITY_RATE": "0",
    "CLINIC_RETRY_MIN_BACKOFF_MS": "100",
    "CLINIC_RETRY_MAX_BACKOFF_MS": "500",
    "CLINIC_RATE_LIMIT": "0",
}


@pytest.fixture
def project(engine: Dockerd, tmp_path) -> ComposeProject:
    project = ComposeProject(engine, tmp_path / "compose.log", **PIPELINE)
    try:
        project.up()
        project.create_client_key()
        yield project
    finally:
        project.down()


def test_a_booking_is_confirmed_and_a_crashed_worker_loses_nothing(project: ComposeProject):
    first = project.book("Ana Pérez", slot(9, 0, weekday=1))
    assert first.status == 202, first.body
    assert project.wait_final(first.json()["booking_id"])["status"] == "confirmed"

    ids = []
    for n in range(6):
        response = project.book(f"Patient {n}", slot(10 + n, 0, weekday=2))
        assert response.status == 202, response.body
        ids.append(response.json()["booking_id"])
    wait_until(
        lambda: project.queue_counts().get("clinic.confirm", {}).get("messages_unacknowledged", 0) > 0,
        timeout=60,
        interval=0.2,
        what="the confirmer to hold messages",
    )
    container, pid, restarts = project.kill_main_process("confirmer")
    project.wait_restarted(container, pid, restarts)

    outcomes = {booking_id: project.wait_final(booking_id, timeout=180) for booking_id in ids}
    assert {b["status"] for b in outcomes.values()} == {"confirmed"}, outcomes
    for booking in outcomes.values():
        assert [h["status"] for h in booking["history"]] == ["pending", "confirmed"]
