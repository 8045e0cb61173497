"""``python -m bench --queue-type quorum`` leaves nothing behind: a benchmark namespace of quorum
queues is deleted as a classic one is, and the broker floor declares the run's queue type."""

from __future__ import annotations

from bench import broker_floor
from bench.system import delete_namespace
from clinic.broker.dispatch import ClinicBroker
from clinic.config import STAGES
from tests.support import queue_stats


def namespace_queues(namespace: str) -> dict[str, str]:
    return {name: queue["type"] for name, queue in queue_stats("type").items() if name.startswith(f"{namespace}.")}


def test_a_namespace_of_quorum_queues_is_deleted_whole(rabbitmq, namespace):
    ClinicBroker(url=rabbitmq, queue_type="quorum").verify_queues([f"{namespace}.{stage}" for stage in STAGES])
    declared = namespace_queues(namespace)
    assert len(declared) == 3 * len(STAGES) and set(declared.values()) == {"quorum"}

    delete_namespace(rabbitmq, namespace)

    assert namespace_queues(namespace) == {}


def test_the_broker_floor_declares_quorum_queues_only_when_asked():
    assert broker_floor.queue_arguments("classic") == {}
    assert broker_floor.queue_arguments("quorum") == {"x-queue-type": "quorum"}
