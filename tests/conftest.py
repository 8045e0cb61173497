"""Fixtures shared by every scope: a namespace per test, real databases, the real RabbitMQ.

A fixture that needs a service fails when the service is missing; nothing here skips.
"""

from __future__ import annotations

import subprocess
import uuid

import pika
import pytest

from clinic.config import Settings
from tests.support import RABBITMQ_URL, clinic_environment, delete_namespace, postgres_admin, rabbitmq_answers


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The local RabbitMQ's URL; fails the test (never skips) when it does not answer."""
    if not rabbitmq_answers():
        pytest.fail(f"RabbitMQ does not answer at {RABBITMQ_URL}: start it with 'rabbitmq-server -detached'")
    return RABBITMQ_URL


@pytest.fixture
def namespace(rabbitmq: str) -> str:
    """A namespace of this test's own on the shared broker; its queues are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    delete_namespace(rabbitmq, name)


@pytest.fixture
def settings() -> Settings:
    """Two doctors, no simulated think time: what most tests of the rules need."""
    return Settings.from_env({"CLINIC_DOCTORS": "Dr. Ana Ruiz;Dr. Luis Gómez", "CLINIC_CONFIRM_DELAY": "0"})


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'clinic.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> None:
    try:
        with postgres_admin():
            pass
    except Exception as error:
        pytest.fail(f"PostgreSQL does not answer on 127.0.0.1:5432 ({type(error).__name__}: {error})")


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = f"clinic_test_{uuid.uuid4().hex[:10]}"
    with postgres_admin() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with postgres_admin() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request) -> str:
    """Each database test runs on a SQLite file and on a PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def amqp_channel(rabbitmq: str):
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    yield connection.channel()
    if connection.is_open:
        connection.close()


@pytest.fixture
def clinic_env(namespace: str, sqlite_url: str) -> dict[str, str]:
    """Environment for real ``clinic`` processes: own namespace and database, quick pipeline."""
    return clinic_environment(namespace, sqlite_url)


def pytest_report_header(config) -> list[str]:
    version = subprocess.run(["rabbitmqctl", "-q", "version"], capture_output=True, text=True).stdout.strip()
    return [f"rabbitmq: {version or 'rabbitmqctl did not answer'}"]
