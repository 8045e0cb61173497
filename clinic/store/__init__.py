"""Where bookings live: the models, bound late to any ``playhouse.db_url`` database.

``models`` holds the tables, ``compiled`` the hot queries built once, ``sqlite`` the SQLite
writer queue. Binding (:func:`connect`) is an explicit step of each process's start: importing
this package connects nothing.
"""

from __future__ import annotations

import peewee
from playhouse import db_url
from playhouse.migrate import SchemaMigrator, migrate

from clinic.store.compiled import Compiled, column_values
from clinic.store.group_commit import Commit, GroupCommit, in_transaction
from clinic.store.models import (
    ApiKey,
    BaseModel,
    Booking,
    BookingEvent,
    IdempotencyRecord,
    UTCDateTimeField,
    WebhookDelivery,
    WebhookEndpoint,
    database,
    utcnow,
)
from clinic.store.postgres import NoticeWatcher, install_event_notice
from clinic.store.sqlite import ClinicSqliteDatabase, CommitWatcher, open_sqlite

MODELS: list[type[BaseModel]] = [Booking, BookingEvent, ApiKey, IdempotencyRecord, WebhookEndpoint, WebhookDelivery]

__all__ = [
    "MODELS",
    "ApiKey",
    "BaseModel",
    "Booking",
    "BookingEvent",
    "Commit",
    "Compiled",
    "GroupCommit",
    "IdempotencyRecord",
    "UTCDateTimeField",
    "WebhookDelivery",
    "WebhookEndpoint",
    "close_session",
    "commit_watcher",
    "column_values",
    "connect",
    "create_schema",
    "database",
    "in_transaction",
    "open_session",
    "utcnow",
]


def connect(url: str) -> peewee.Database:
    """Bind the models to the database at ``url`` and return it.

    Connections come from a pool (Peewee's ``playhouse.pool``): each request or message still
    opens and closes one, but closing returns it, so nothing is reconnected (and no pragma re-run)
    per request. ``sqlite://`` and ``postgresql://`` get their pooled class; ``...+pool://`` URLs
    and any other ``playhouse.db_url`` scheme are taken as written."""
    scheme = url.split(":", 1)[0]
    if scheme in ("sqlite", "sqlite+pool"):
        options = db_url.parse(url)
        db = open_sqlite(options.pop("database"), **options)
    elif scheme in ("postgres", "postgresql"):
        db = db_url.connect(scheme + "+pool" + url[len(scheme) :], max_connections=None, stale_timeout=300)
    else:
        db = db_url.connect(url)
    database.initialize(db)
    return db


def commit_watcher(db: peewee.Database, *, every: float = 0.002) -> CommitWatcher | NoticeWatcher | None:
    """What wakes a poller (the relay) as soon as another connection commits: on SQLite, a change
    of the file's ``data_version`` (read every ``every`` seconds); on PostgreSQL, the event table's
    ``NOTIFY`` (:func:`create_schema` installs its trigger); None for any other database."""
    if isinstance(db, ClinicSqliteDatabase):
        return CommitWatcher(db.database, every=every)
    if isinstance(db, peewee.PostgresqlDatabase):
        return NoticeWatcher(db)
    return None


def open_session() -> None:
    """Take a connection for one request or message (Peewee's connection-per-unit-of-work recipe)."""
    database.connect(reuse_if_open=True)


def close_session() -> None:
    """Give the unit of work's connection back, so none outlives it or crosses threads."""
    if not database.is_closed():
        database.close()


#: The PostgreSQL advisory lock key that schema changes hold (any fixed number of our own).
SCHEMA_LOCK = 0x636C696E6963  # "clinic"


def create_schema() -> None:
    """Create missing tables, columns and indexes; safe to run any number of times."""
    on_postgresql = isinstance(database.obj, peewee.PostgresqlDatabase)
    with database.connection_context():
        with database.atomic():
            if on_postgresql:
                # Processes that start together (API processes, replicas) take turns: two trigger
                # installs at once deadlock each other. Released when the transaction ends.
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            # Columns first: an index of an existing table may name a column it does not have yet.
            _add_missing_columns()
            # safe=True creates each missing table and each missing index (IF NOT EXISTS), so an
            # index added in a later version is created on an existing database too.
            database.create_tables(MODELS, safe=True)
            if on_postgresql:
                install_event_notice(database.obj, BookingEvent._meta.table_name)


def _add_missing_columns() -> None:
    migrator = SchemaMigrator.from_database(database.obj)
    tables = set(database.get_tables())
    for model in MODELS:
        table = model._meta.table_name
        if table not in tables:
            continue
        present = {column.name for column in database.get_columns(table)}
        missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
        migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))
        if model is BookingEvent and "relayed_at" in {f.column_name for f in missing}:
            # History written before events were relayed was announced the old way: mark it done,
            # so an upgrade does not announce the whole past again.
            BookingEvent.update(relayed_at=BookingEvent.at).execute()
