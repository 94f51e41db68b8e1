"""Engine and session factories. Nothing is created at import time.

SQLite (the embedded default) gets WAL mode and a busy timeout so several worker processes can share
one file; PostgreSQL URLs are used as given (postgresql+psycopg://...).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ARRAY, String, Table, TextClause, any_, bindparam, event, literal, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

SessionFactory = Callable[[], Session]


def json_loads(text: str | bytes) -> Any:
    """JSON columns read with orjson (several times faster than `json` on the send path's thousands of
    rows); a value orjson refuses but `json` wrote (NaN, integers beyond 64 bits) falls back to `json`."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite files get WAL and a 30 s busy timeout."""
    kwargs.setdefault("json_deserializer", json_loads)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def database_time(engine: Engine) -> float:
    """The database server's clock as a UNIX time (SQLite: the clock of the host that opens the file)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            value = connection.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp())").scalar()
        else:
            value = connection.exec_driver_sql("SELECT (julianday('now') - 2440587.5) * 86400.0").scalar()
    if value is None:
        raise RuntimeError("the database returned no time")
    return float(value)


def make_session_factory(engine: Engine) -> SessionFactory:
    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    return factory


@contextmanager
def transaction(sessions: SessionFactory) -> Iterator[Session]:
    """A session that commits on success, rolls back on error, and is always closed."""
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def table_of(model: Any) -> Table:
    """The `Table` of a SQLModel table class, for Core statements on hot paths (no ORM bulk machinery)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values` for thousands of values: one array parameter on PostgreSQL (`= ANY(:values)`),
    so the statement stays small and cheap to build; an expanding IN elsewhere."""
    items = list(values)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return column == any_(bindparam(None, items, type_=ARRAY(String)))
    return column.in_(items)


def update_rows(
    session: Session,
    table: Table,
    key: str,
    types: dict[str, str],
    columns: dict[str, list[Any]],
    *,
    guard: str | None = None,
) -> int:
    """Update many rows of `table`, each with its own values, found by `key`; returns how many moved.

    `types`: each written column (the key included) and its PostgreSQL type; `columns`: one list of
    values per name of `types`, row by row, plus `b_<guard>` (the values read) with `guard`, so a row
    moves only while its `guard` column still holds that value and a concurrent writer that got there
    first is not overwritten. PostgreSQL: one `UPDATE ... FROM unnest(arrays)`, one parameter per column
    whatever the row count, firing a statement-level trigger once. Elsewhere: one executemany."""
    names = list(types) + ([f"b_{guard}"] if guard else [])
    if not columns[key]:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        arrays = _array_update(table, key, tuple(types.items()), guard)
        return _rowcount(session.connection().execute(arrays, {name: columns[name] for name in names}))
    where = [table.c[key] == bindparam(f"b_{key}")]
    if guard:
        where.append(table.c[guard] == bindparam(f"b_{guard}"))
    written = [name for name in types if name != key]
    statement = update(table).where(*where).values({name: bindparam(name) for name in written})
    rows = [
        dict(zip(names, values, strict=True)) for values in zip(*(columns[n] for n in names), strict=True)
    ]
    for row in rows:
        row[f"b_{key}"] = row.pop(key)
    return _rowcount(session.connection().execute(statement, rows))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@functools.cache
def _array_update(
    table: Table, key: str, types: tuple[tuple[str, str], ...], guard: str | None
) -> TextClause:
    kinds = dict(types)
    arrays = {key: kinds[key], **({f"b_{guard}": kinds[guard]} if guard else {}),
              **{name: kind for name, kind in types if name != key}}  # fmt: skip
    sets = ", ".join(f"{name} = f.{name}" for name in kinds if name != key)
    unnest = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in arrays.items())
    where = f"t.{key} = f.{key}" + (f" AND t.{guard} = f.b_{guard}" if guard else "")
    return text(
        f"UPDATE {table.name} AS t SET {sets} FROM unnest({unnest}) AS f({', '.join(arrays)}) WHERE {where}"
    )


def fixed(value: str) -> Any:
    """A constant (a state name) written into the SQL text instead of sent as a parameter.

    The sweeps and gauges compare states this way so their partial indexes (`... WHERE state =
    'scheduled'`) stay usable by a generic plan: psycopg prepares a statement after 5 executions and
    PostgreSQL may then plan it once for any parameter values, when `state = $1` proves nothing about
    the index's predicate and the plan reads the whole table. The statement text stays the same for every
    call, so it is still prepared and cached. Only for constants from the code, never for input."""
    return literal(str(value), String(), literal_execute=True)


def fixed_in(column: Any, values: Iterable[str]) -> Any:
    """`column IN ('a', 'b')` with the constants in the SQL text (see `fixed`)."""
    constants = bindparam(
        None, [str(v) for v in values], type_=String(), expanding=True, literal_execute=True
    )
    return column.in_(constants)


def utc(value: datetime | None) -> datetime | None:
    """Make a datetime read back from the database aware (SQLite drops the offset; values are UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
