"""compose.yml's cluster profile, run for real: three RabbitMQ nodes clustered, PostgreSQL, quorum
queues, three confirmers; a booking is confirmed, and a node whose main process is killed is
restarted by its restart policy without losing a booking."""

from __future__ import annotations

import pytest

from tests.support import slot, wait_until
from tests.support.compose import ComposeProject
from tests.support.docker import Dockerd

pytestmark = pytest.mark.docker

#: The cluster-* services; naming them starts only the cluster deployment and what it depends on.
CLUSTER_SERVICES = (
    "cluster-api",
    "cluster-processor",
    "cluster-confirmer",
    "cluster-rejector",
    "cluster-notifier",
    "cluster-webhooks",
    "cluster-relay",
    "cluster-sweeper",
)
NODES = ("rabbit1", "rabbit2", "rabbit3")
PIPELINE = {
    "CLINIC_CONFIRM_DELAY": "1-3",
    "CLINIC_UNAVAILABILITY_RATE": "0",
    "CLINIC_RETRY_MIN_BACKOFF_MS": "100",
    "CLINIC_RETRY_MAX_BACKOFF_MS": "500",
    "CLINIC_RATE_LIMIT": "0",
}


@pytest.fixture
def cluster(engine: Dockerd, tmp_path) -> ComposeProject:
    project = ComposeProject(
        engine, tmp_path / "compose.log", profiles=("cluster",), api_service="cluster-api", **PIPELINE
    )
    try:
        project.up("--scale", "cluster-confirmer=3", *CLUSTER_SERVICES)
        project.create_client_key()
        yield project
    finally:
        project.down()


def test_the_cluster_profile_confirms_and_loses_nothing_when_a_node_dies(cluster: ComposeProject):
    assert len(cluster.compose("ps", "-q", "cluster-confirmer", timeout=60).split()) == 3
    assert running_nodes(cluster) == 3

    first = cluster.book("Ana Pérez", slot(9, 0, weekday=1))
    assert first.status == 202, first.body
    assert cluster.wait_final(first.json()["booking_id"], timeout=180)["status"] == "confirmed"
    queues = cluster.rabbitmqctl("rabbit2", "list_queues", "-q", "name", "type")
    assert {q["type"] for q in queues if q["name"].startswith("clinic.")} == {"quorum"}, queues

    ids = []
    for n in range(6):
        response = cluster.book(f"Patient {n}", slot(10 + n, 0, weekday=2))
        assert response.status == 202, response.body
        ids.append(response.json()["booking_id"])
    container, pid, restarts = cluster.kill_main_process("rabbit1")
    cluster.wait_restarted(container, pid, restarts, timeout=300)

    outcomes = {booking_id: cluster.wait_final(booking_id, timeout=300) for booking_id in ids}
    assert {b["status"] for b in outcomes.values()} == {"confirmed"}, outcomes
    for booking in outcomes.values():
        assert [h["status"] for h in booking["history"]] == ["pending", "confirmed"]
    wait_until(lambda: running_nodes(cluster) == 3, timeout=300, interval=2, what="the node to rejoin the cluster")


def running_nodes(cluster: ComposeProject) -> int:
    return len(cluster.rabbitmqctl("rabbit2", "cluster_status")["running_nodes"])
