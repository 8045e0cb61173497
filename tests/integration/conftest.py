import pytest

from clinic import store


@pytest.fixture
def db(database_url):
    """The models bound to a fresh database (SQLite file or PostgreSQL), schema created."""
    database = store.connect(database_url)
    store.create_schema()
    database.connect(reuse_if_open=True)
    yield database
    database.close()
