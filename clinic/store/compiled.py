"""Hot queries compiled once: Peewee builds a query's SQL anew on every execution."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import peewee

from clinic.store.models import BaseModel, database


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
        # The fields a SELECT of plain columns of its model reads, in order (None: anything else).
        self._fields: tuple[peewee.Field, ...] | None = None

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
            self._fields = _plain_fields(query)
            compiled = self._compiled = (database.obj, query, sql, params, slots)
        _, query, sql, params, slots = compiled
        return query, sql, [p if slot is None else values[slot] for p, slot in zip(params, slots, strict=True)]

    def rows(self, **values) -> list:
        """Run a SELECT; rows come back as model instances, converted as Peewee converts them.

        A SELECT of its model's own columns is read with the fields resolved once: Peewee's
        ``raw`` resolves the cursor's columns to fields anew on every execution, which cost 0.16 of
        the 0.18 ms a lookup by primary key took (measured here)."""
        query, sql, params = self._sql(values)
        fields = self._fields
        if fields is None:
            return list(query.model.raw(sql, *params))
        return [_instance(query.model, fields, row) for row in database.execute_sql(sql, params).fetchall()]

    def tuples(self, **values) -> list[tuple]:
        """Run a SELECT; rows come back as plain tuples of the database's values, unconverted
        (cheaper than model instances, for a hot lookup that needs only a few raw columns)."""
        _, sql, params = self._sql(values)
        return database.execute_sql(sql, params).fetchall()

    def joined(self, models: tuple[type[BaseModel], ...], **values) -> list[tuple]:
        """Run a SELECT of whole rows of ``models`` joined (``select(A, B).join(B)``: A's fields,
        then B's); each row comes back as one instance per model, converted as Peewee converts
        them. ``raw`` cannot do this: the models' columns share names."""
        _, sql, params = self._sql(values)
        fields = [model._meta.sorted_fields for model in models]
        width = sum(map(len, fields))
        found = []
        for row in database.execute_sql(sql, params).fetchall():
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
        _, sql, params = self._sql(values)
        return database.rows_affected(database.execute_sql(sql, params))


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
