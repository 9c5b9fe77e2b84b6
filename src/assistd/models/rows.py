"""ORM objects as plain rows, and typed placeholders for hand-written statements (the hot
write paths send one statement where the ORM would send several)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from psycopg.types.json import Jsonb
from sqlalchemy import Table, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import ClassManager, DeclarativeBase, make_transient_to_detached

Row = tuple[Table, dict[str, Any]]
"""A row to insert: its table and values by column name."""

_T = TypeVar("_T", bound=DeclarativeBase)
_MANAGERS: dict[type[Any], ClassManager[Any]] = {}


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_COLUMN_TYPES: dict[tuple[str, str], str] = {}


def table_of(model: type[DeclarativeBase]) -> Table:
    """The table an ORM class maps."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


_LAYOUTS: dict[type[Any], tuple[Table, tuple[tuple[str, str, bool], ...]]] = {}


def _layout(cls: type[DeclarativeBase]) -> tuple[Table, tuple[tuple[str, str, bool], ...]]:
    """A mapped class's table and, per column, (attribute, column, database fills it)."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        columns = tuple(
            (attr.key, attr.columns[0].name, attr.columns[0].server_default is not None)
            for attr in inspect(cls).column_attrs
        )
        layout = _LAYOUTS[cls] = (table_of(cls), columns)
    return layout


def plain_row(obj: DeclarativeBase) -> Row:
    """A new ORM object as a row to insert; columns left None that the database fills
    (``seq``) are left out."""
    table, columns = _layout(type(obj))
    # A new object holds the values it was given in its __dict__ (an attribute never set
    # is absent: None, as the ORM would read it), without the ORM's descriptors.
    given = obj.__dict__
    values: dict[str, Any] = {}
    for key, name, filled in columns:
        value = given.get(key)
        if value is None and filled:
            continue
        values[name] = value
    return table, values


def sql_type(table: Table, column: str) -> str:
    """The Postgres type of ``table.column`` (compiled once)."""
    key = (table.name, column)
    if key not in _COLUMN_TYPES:
        _COLUMN_TYPES[key] = table.c[column].type.compile(dialect=_PG)
    return _COLUMN_TYPES[key]


def bind(params: dict[str, Any], key: str, table: Table, column: str, value: Any) -> str:
    """A psycopg placeholder for ``value`` as ``table.column``'s type, added to ``params``."""
    type_ = sql_type(table, column)
    params[key] = Jsonb(value) if type_ == "JSONB" and value is not None else value
    return f"%({key})s::{type_}"


def insert_values(params: dict[str, Any], prefix: str, row: Row) -> tuple[str, str]:
    """``(quoted column list, placeholder list)`` of an INSERT of ``row``."""
    table, values = row
    names = ", ".join(f'"{c}"' for c in values)
    exprs = ", ".join(
        bind(params, f"{prefix}{j}", table, c, v) for j, (c, v) in enumerate(values.items())
    )
    return names, exprs


def columns_of(cls: type[DeclarativeBase], alias: str) -> str:
    """The select list of ``cls``'s columns (table alias ``alias``), in the order ``loaded``
    takes them."""
    _, columns = _layout(cls)
    return ", ".join(f'{alias}."{name}"' for _, name, _ in columns)


def width(cls: type[DeclarativeBase]) -> int:
    """How many columns ``columns_of(cls)`` selects."""
    return len(_layout(cls)[1])


def loaded(cls: type[_T], values: Sequence[Any]) -> _T:
    """An ORM object from a row read by hand (columns in ``columns_of`` order): detached,
    as if a session had loaded it and let it go (``session.add`` makes it persistent again,
    without a query)."""
    _, columns = _layout(cls)
    manager = _MANAGERS.get(cls)
    if manager is None:
        manager = _MANAGERS[cls] = inspect(cls).class_manager
    obj: _T = cast(_T, manager.new_instance())
    given = obj.__dict__
    for (key, _, _), value in zip(columns, values, strict=True):
        given[key] = value
    make_transient_to_detached(obj)
    return obj
