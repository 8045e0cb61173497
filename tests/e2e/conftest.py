import pytest

from tests.support import Clinic


@pytest.fixture
def clinic(clinic_env, tmp_path):
    """A running ``clinic up`` with its own namespace and SQLite file."""
    running = Clinic(clinic_env, tmp_path / "clinic.log").start()
    yield running
    running.stop()
