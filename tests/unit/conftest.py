import pytest

from clinic import store
from clinic.config import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"CLINIC_DOCTORS": "Dr. Ana Ruiz;Dr. Luis Gómez", "CLINIC_CONFIRM_DELAY": "0"})


@pytest.fixture
def db(database_url):
    """The models bound to a fresh database (SQLite file or PostgreSQL), schema created."""
    database = store.connect(database_url)
    store.create_schema()
    database.connect(reuse_if_open=True)
    yield database
    database.close()
