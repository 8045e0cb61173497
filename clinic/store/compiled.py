"""Hot queries compiled once: Peewee builds a query's SQL anew on every execution."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import peewee

from clinic.store.models import BaseModel, database


class _Plan(NamedTuple):
    """A query compiled for one database: ``slots[i]`` names the value of ``params[i]``, or is
    None; ``fields`` are what a SELECT of plain columns of its model reads, in order (None for
    anything else)."""

    database: peewee.Database
    query: peewee.Query
    sql: str
    params: list
    slots: list[str | None]
    fields: tuple[peewee.Field, ...] | None


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
        self._compiled: _Plan | None = None

    def _plan(self, values: dict) -> tuple[_Plan, list]:
        """The plan for the bound database (compiled on first use) and its parameters with ``values``."""
        compiled = self._compiled
        if compiled is None or compiled.database is not database.obj:
            markers = {f"\x00{name}\x00": name for name in self.names}
            query = self.build(**{name: marker for marker, name in markers.items()})
            sql, params = query.sql()
            missing = set(markers) - {p for p in params if isinstance(p, str)}
            if missing:
                raise ValueError(f"{self.build.__name__}: a value is not a plain parameter: {missing}")
            slots = [markers.get(p) if isinstance(p, str) else None for p in params]
            compiled = self._compiled = _Plan(database.obj, query, sql, params, slots, _plain_fields(query))
        filled = [p if slot is None else values[slot] for p, slot in zip(compiled.params, compiled.slots, strict=True)]
        return compiled, filled

    def rows(self, **values) -> list:
        """Run a SELECT; rows come back as model instances, converted as Peewee converts them.

        A SELECT of its model's own columns is read with the fields resolved once: Peewee's
        ``raw`` resolves the cursor's columns to fields anew on every execution, which cost 0.16 of
        the 0.18 ms a lookup by primary key took (measured here)."""
        plan, params = self._plan(values)
        model = plan.query.model
        if plan.fields is None:
            return list(model.raw(plan.sql, *params))
        return [_instance(model, plan.fields, row) for row in database.execute_sql(plan.sql, params).fetchall()]

    def tuples(self, **values) -> list[tuple]:
        """Run a SELECT; rows come back as plain tuples of the database's values, unconverted
        (cheaper than model instances, for a hot lookup that needs only a few raw columns)."""
        plan, params = self._plan(values)
        return database.execute_sql(plan.sql, params).fetchall()

    def joined(self, models: tuple[type[BaseModel], ...], **values) -> list[tuple]:
        """Run a SELECT of whole rows of ``models`` joined (``select(A, B).join(B)``: A's fields,
        then B's); each row comes back as one instance per model, converted as Peewee converts
        them. ``raw`` cannot do this: the models' columns share names."""
        plan, params = self._plan(values)
        fields = [model._meta.sorted_fields for model in models]
        width = sum(map(len, fields))
        found = []
        for row in database.execute_sql(plan.sql, params).fetchall():
            if len(row) != width:
                raise ValueError(f"{self.build.__name__}: {len(row)} columns, not the {width} of {models}")
            instances, start = [], 0
            for model, model_fields in zip(models, fields, strict=True):
                end = start + len(model_fields)
                instances.append(_instance(model, model_fields, row[start:end]))
                start = end
            found.append(tuple(instances))
        return found

    def execute(self, **values) -> int:
        """Run an INSERT, UPDATE or DELETE; return how many rows it touched."""
        plan, params = self._plan(values)
        return database.rows_affected(database.execute_sql(plan.sql, params))


def _plain_fields(query: peewee.Query) -> tuple[peewee.Field, ...] | None:
    """The fields a SELECT reads, when each of its columns is a plain field of its own model."""
    if not isinstance(query, peewee.Select):
        return None
    selected = query.selected_columns or []
    if selected and all(isinstance(c, peewee.Field) and c.model is query.model for c in selected):
        return tuple(selected)
    return None


def _instance(model: type[BaseModel], fields, row) -> BaseModel:
    """One row as an instance of ``model``, as Peewee's own cursor wrapper builds it: only the
    columns read, converted by their fields, nothing marked changed."""
    instance = model(__no_default__=1, **{f.name: f.python_value(v) for f, v in zip(fields, row, strict=True)})
    instance._dirty.clear()
    return instance


def column_values(instance: BaseModel, names: tuple[str, ...]) -> dict:
    """The named fields of a model instance in their database form, for a :class:`Compiled` query."""
    fields = type(instance)._meta.fields
    return {name: fields[name].db_value(getattr(instance, name)) for name in names}
