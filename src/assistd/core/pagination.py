"""Cursor pagination over ``(seq)``, the insertion order every listed table carries.

``after``/``before`` are object ids relative to the requested order. A cursor id that does not
exist in the same scope yields an empty page, as a deleted cursor would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

M = TypeVar("M")


@dataclass(frozen=True)
class ListParams:
    """Validated list query parameters."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


async def paginate(
    session: AsyncSession,
    model: type[M],
    scope: Sequence[ColumnElement[bool]],
    params: ListParams,
    *,
    id_column: Any = None,
) -> tuple[list[M], bool]:
    """One page of ``model`` rows matching ``scope``, and whether more follow.

    Cursors name rows by ``model.id`` unless ``id_column`` says otherwise.
    """
    cols: Any = model
    seq = cols.seq
    ident = cols.id if id_column is None else id_column

    def cursor_seq(object_id: str) -> Any:
        return select(seq).where(ident == object_id, *scope).scalar_subquery()

    conditions = list(scope)
    ascending = params.order == "asc"
    if params.after is not None:
        after = cursor_seq(params.after)
        conditions.append(seq > after if ascending else seq < after)
    if params.before is not None:
        before = cursor_seq(params.before)
        conditions.append(seq < before if ascending else seq > before)

    # With only `before`, walk away from the cursor in the opposite order, then flip back, so
    # the page holds the items nearest to the cursor.
    reverse = params.before is not None and params.after is None
    walk_ascending = ascending != reverse
    stmt = (
        select(model)
        .where(*conditions)
        .order_by(seq.asc() if walk_ascending else seq.desc())
        .limit(params.limit + 1)
    )
    rows = list((await session.scalars(stmt)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    if reverse:
        rows.reverse()
    return rows, has_more
