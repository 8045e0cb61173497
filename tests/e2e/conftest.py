import pytest

from tests.support import Clinic


@pytest.fixture
def clinic(clinic_env, tmp_path):
    """A running ``clinic up`` with its own namespace and SQLite file."""
    running = Clinic(clinic_env, tmp_path / "clinic.log").start()
    yield running
    running.stop()


@pytest.fixture
def start_clinic(clinic_env, tmp_path):
    """Start ``clinic up`` with extra settings (``start_clinic(CLINIC_CONFIRM_DELAY="4")``)."""
    started = []

    def start(**env) -> Clinic:
        running = Clinic({**clinic_env, **env}, tmp_path / f"clinic-{len(started)}.log").start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def clinic_on_each_database(clinic_env, database_url, tmp_path):
    """A running ``clinic up`` on a SQLite file, then (the test runs twice) on PostgreSQL."""
    running = Clinic({**clinic_env, "CLINIC_DATABASE_URL": database_url}, tmp_path / "clinic.log").start()
    yield running
    running.stop()
