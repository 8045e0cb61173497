"""Where bookings live: Peewee models bound late to any ``playhouse.db_url`` database."""

from __future__ import annotations

import fcntl
import inspect
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import peewee
from playhouse import db_url
from playhouse.migrate import SchemaMigrator, migrate
from playhouse.pool import PooledSqliteDatabase

#: Bound to the real database by :func:`connect`; the models never name a backend.
database = peewee.DatabaseProxy()

#: Seconds a SQLite writer waits for another process's lock before giving up.
SQLITE_BUSY_TIMEOUT = 30

SQLITE_PRAGMAS = {
    # Readers never block the one writer, so the API and several workers share one file.
    "journal_mode": "wal",
    # FULL: a commit survives a power cut, not only a crash (an accepted booking is never lost).
    "synchronous": "full",
    "foreign_keys": 1,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTimeField(peewee.DateTimeField):
    """Stores aware datetimes as naive UTC, hands back aware UTC datetimes."""

    def db_value(self, value: datetime | None):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Booking(BaseModel):
    """One patient's request for one slot; ``status`` moves from pending to a final state once."""

    id = peewee.CharField(max_length=36, primary_key=True)
    patient = peewee.TextField()
    slot = UTCDateTimeField(index=True)
    requested_doctor_id = peewee.IntegerField(null=True)
    doctor_id = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=16, default="pending")
    reason = peewee.TextField(null=True)
    owner = peewee.CharField(max_length=64, null=True, index=True)
    swept_at = UTCDateTimeField(null=True)  # when the sweeper last re-sent it
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "booking"
        indexes = ((("status", "updated_at"), False),)


# The guard against double booking lives in the database, not in a check-then-write:
# at most one confirmed booking per doctor and slot, on SQLite and PostgreSQL alike.
Booking.add_index(Booking.index(Booking.doctor_id, Booking.slot, unique=True, where=(Booking.status == "confirmed")))


class BookingEvent(BaseModel):
    """One status change of a booking; a booking enters each status at most once."""

    booking = peewee.ForeignKeyField(Booking, backref="events", on_delete="CASCADE", column_name="booking_id")
    status = peewee.CharField(max_length=16)
    reason = peewee.TextField(null=True)
    at = UTCDateTimeField()

    class Meta:
        table_name = "booking_event"
        indexes = ((("booking", "status"), True),)


class ApiKey(BaseModel):
    """A bearer API key: only the SHA-256 of its secret is kept; ``revoked_at`` ends it for good."""

    id = peewee.CharField(max_length=16, primary_key=True)
    name = peewee.CharField(max_length=100)
    scope = peewee.CharField(max_length=16)
    secret_hash = peewee.CharField(max_length=64)
    created_at = UTCDateTimeField()
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_key"
        indexes = ((("scope", "revoked_at"), False),)


class IdempotencyRecord(BaseModel):
    """The answer given to one ``Idempotency-Key`` of one owner ('' when open), stored in the
    same transaction as the booking it created; the unique key decides concurrent duplicates."""

    owner = peewee.CharField(max_length=64)
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)
    booking = peewee.ForeignKeyField(Booking, on_delete="CASCADE", column_name="booking_id")
    response_status = peewee.IntegerField()
    response_body = peewee.TextField()
    created_at = UTCDateTimeField(index=True)

    class Meta:
        table_name = "idempotency_record"
        indexes = ((("owner", "key"), True),)


MODELS: list[type[BaseModel]] = [Booking, BookingEvent, ApiKey, IdempotencyRecord]


class SqliteWriterQueue:
    """SQLite mixin: write transactions queue for the file's one writer lock instead of polling it.

    SQLite admits one writer per file; a writer that finds the lock taken sleeps in SQLite's busy
    handler (1, 2, 5, 10... ms between tries), which the benchmark's profile showed taking most of
    the API's time under load. Here a writer first takes a thread lock (its process's turn), then
    an exclusive ``flock`` on ``<database>.writer`` (the file's turn, across processes): both wake
    the next writer the moment the last one commits. The kernel drops the ``flock`` of a process
    that dies, and SQLite's busy timeout still guards any writer that does not use this class."""

    def __init__(self, *args, **kwargs):
        self._writer = threading.Lock()
        self._holder = threading.local()
        self._lock_file: int | None = None
        super().__init__(*args, **kwargs)

    def begin(self, *args, **kwargs):
        self._writer.acquire()
        self._holder.writing = True
        try:
            fcntl.flock(self._writer_file(), fcntl.LOCK_EX)
            return super().begin(*args, **kwargs)
        except BaseException:
            self._release_writer()
            raise

    def commit(self):
        try:
            return super().commit()
        finally:
            self._release_writer()

    def rollback(self):
        try:
            return super().rollback()
        finally:
            self._release_writer()

    def _writer_file(self) -> int:
        if self._lock_file is None:  # opened once per process, after any fork
            path = os.devnull if self.database in ("", ":memory:") else f"{self.database}.writer"
            self._lock_file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_file

    def _release_writer(self) -> None:
        if getattr(self._holder, "writing", False):
            self._holder.writing = False
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._writer.release()


class ClinicSqliteDatabase(SqliteWriterQueue, PooledSqliteDatabase):
    """Pooled SQLite with one writer at a time per process."""


def connect(url: str) -> peewee.Database:
    """Bind the models to the database at ``url`` and return it.

    Connections come from a pool (Peewee's ``playhouse.pool``): each request or message still
    opens and closes one, but closing returns it, so nothing is reconnected (and no pragma re-run)
    per request. ``sqlite://`` and ``postgresql://`` get their pooled class; ``...+pool://`` URLs
    and any other ``playhouse.db_url`` scheme are taken as written."""
    scheme = url.split(":", 1)[0]
    if scheme in ("sqlite", "sqlite+pool"):
        options = db_url.parse(url)
        db = ClinicSqliteDatabase(
            options.pop("database"),
            # IMMEDIATE: a write transaction takes the lock when it begins, so two writers queue on
            # the busy timeout instead of one failing with "database is locked" on upgrade.
            lock_type="IMMEDIATE",
            pragmas={**SQLITE_PRAGMAS, "busy_timeout": SQLITE_BUSY_TIMEOUT * 1000},
            check_same_thread=False,  # a pooled connection serves one thread at a time, any thread
            max_connections=None,
            stale_timeout=3600,
            **options,
        )
    elif scheme in ("postgres", "postgresql"):
        db = db_url.connect(scheme + "+pool" + url[len(scheme) :], max_connections=None, stale_timeout=300)
    else:
        db = db_url.connect(url)
    database.initialize(db)
    return db


class Compiled:
    """A Peewee query whose SQL is built once per database, then run with new values each time.

    Peewee builds a query's SQL anew on every execution: about 0.11 ms for a lookup by primary key
    against 0.03 ms to run the same SQL (measured here), and the benchmark's profile put SQL
    building at 15-25% of each worker's CPU. ``build`` takes one keyword per value (named by its
    parameters, or by ``names`` when it takes ``**values``) and returns the query; it is called
    once with markers in place of the values. Values are given already in their database form
    (``Booking.slot.db_value(dt)`` for a datetime; :func:`column_values` converts a model's)."""

    def __init__(self, build: Callable[..., peewee.Query], *, names: tuple[str, ...] | None = None) -> None:
        self.build = build
        self.names = names or tuple(inspect.signature(build).parameters)
        # (database, query, sql, params, slots): slots[i] names the value of params[i], or is None
        self._compiled: tuple[object, peewee.Query, str, list, list[str | None]] | None = None

    def _sql(self, values: dict) -> tuple[peewee.Query, str, list]:
        compiled = self._compiled
        if compiled is None or compiled[0] is not database.obj:
            markers = {f"\x00{name}\x00": name for name in self.names}
            query = self.build(**{name: marker for marker, name in markers.items()})
            sql, params = query.sql()
            missing = set(markers) - {p for p in params if isinstance(p, str)}
            if missing:
                raise ValueError(f"{self.build.__name__}: a value is not a plain parameter: {missing}")
            slots = [markers.get(p) if isinstance(p, str) else None for p in params]
            compiled = self._compiled = (database.obj, query, sql, params, slots)
        _, query, sql, params, slots = compiled
        return query, sql, [p if slot is None else values[slot] for p, slot in zip(params, slots, strict=True)]

    def rows(self, **values) -> list:
        """Run a SELECT; rows come back as model instances, converted as Peewee converts them."""
        query, sql, params = self._sql(values)
        return list(query.model.raw(sql, *params))

    def execute(self, **values) -> int:
        """Run an INSERT, UPDATE or DELETE; return how many rows it touched."""
        _, sql, params = self._sql(values)
        return database.rows_affected(database.execute_sql(sql, params))


def column_values(instance: BaseModel, names: tuple[str, ...]) -> dict:
    """The named fields of a model instance in their database form, for a :class:`Compiled` query."""
    fields = type(instance)._meta.fields
    return {name: fields[name].db_value(getattr(instance, name)) for name in names}


def create_schema() -> None:
    """Create missing tables, columns and indexes; safe to run any number of times."""
    with database.connection_context():
        with database.atomic():
            database.create_tables(MODELS, safe=True)
            _add_missing_columns()


def _add_missing_columns() -> None:
    migrator = SchemaMigrator.from_database(database.obj)
    for model in MODELS:
        table = model._meta.table_name
        present = {column.name for column in database.get_columns(table)}
        missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
        migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))
