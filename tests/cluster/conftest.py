"""Three RabbitMQ nodes of our own (5681-5683), clustered, for the whole session; a ``clinic up``
on all three with quorum queues and PostgreSQL for each test."""

from __future__ import annotations

import time
import uuid

import pytest

from clinic import store
from tests.support import Clinic, clinic_environment, delete_namespace
from tests.support.cluster import running_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, rabbitmq):
    """The three nodes; stopped (kill -9 of our node names only) and their folders removed whatever
    happens. ``rabbitmq`` (the machine's node) is only asked whether it answers: its Erlang cookie
    and epmd are shared, nothing else."""
    with running_cluster(tmp_path_factory.mktemp("rabbitmq-cluster")) as running:
        yield running


@pytest.fixture
def cluster_env(cluster, postgres_url):
    """A namespace and PostgreSQL database of this test's own, on all three nodes, quorum queues,
    2 API processes and 2 worker processes per stage."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    env = clinic_environment(
        namespace,
        postgres_url,
        CLINIC_BROKER_URL=cluster.url,
        CLINIC_QUEUE_TYPE="quorum",
        CLINIC_API_PROCESSES="2",
        CLINIC_WORKER_PROCESSES="2",
        CLINIC_WORKER_THREADS="4",
        CLINIC_SWEEP_AFTER="20",
    )
    yield env
    for node in cluster.living():
        delete_namespace(node.url, namespace)
        break


@pytest.fixture
def bookings_db(postgres_url):
    """The test's database, bound to the models in this process, for reading the outcome."""
    database = store.connect(postgres_url)
    yield database
    database.close()


def start(clinic: Clinic, timeout: float = 240) -> Clinic:
    """Start and wait: ten processes and three nodes share 2 cores, so readiness takes a while."""
    started = time.monotonic()
    clinic.start(wait=False)
    try:
        clinic.wait_ready(timeout=timeout)
    except BaseException:
        clinic.stop()
        raise
    clinic.startup_seconds = time.monotonic() - started
    return clinic
