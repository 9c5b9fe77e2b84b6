"""Get-or-404, a page with cursors, modify, delete-or-404 and the 400 for a missing reference,
written once for every resource.

A ``Repository`` knows one model, the column that scopes it (the project, or a parent such as
the thread) and the object's name and parameter in OpenAI's errors. Each service keeps its own
queries beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import ColumnElement, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.errors import InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams, paginate

M = TypeVar("M")

Lock = Literal["update", "share"]
"""``update`` serializes writers of the row; ``share`` only holds it against deletion."""


class Repository(Generic[M]):
    """The shared queries of one resource model scoped by ``scope`` (a column name)."""

    def __init__(
        self,
        model: type[M],
        kind: str,
        param: str,
        *,
        scope: str = "project_id",
        id_column: str = "id",
    ) -> None:
        cols: Any = model
        self.model = model
        self.kind = kind
        self.param = param
        self.scope_column: Any = getattr(cols, scope)
        self.id_column: Any = getattr(cols, id_column)
        # Built once: constructing the statement and its cache key costs CPU on every call.
        self._get = select(model).where(
            self.id_column == bindparam("object_id"), self.scope_column == bindparam("scope_id")
        )

    def not_found(self, object_id: str) -> NotFoundError:
        """OpenAI's 404 for this resource."""
        return NotFoundError.for_object(self.kind, object_id, param=self.param)

    async def get(
        self,
        session: AsyncSession,
        scope_id: str,
        object_id: str,
        *extra: ColumnElement[bool],
        lock: Lock | None = None,
    ) -> M:
        """The row with ``object_id`` in the scope (and matching ``extra``), or 404."""
        stmt = self._get.where(*extra) if extra else self._get
        if lock is not None:
            stmt = stmt.with_for_update(read=lock == "share")
        row: M | None = await session.scalar(stmt, {"object_id": object_id, "scope_id": scope_id})
        if row is None:
            raise self.not_found(object_id)
        return row

    async def require(
        self, session: AsyncSession, scope_id: str, object_ids: Sequence[str], param: str
    ) -> None:
        """400 unless every id names a row of the scope (a reference in a request body).

        ``param`` may hold ``{i}``, replaced by the index of the missing id.
        """
        if not object_ids:
            return
        found = set(
            await session.scalars(
                select(self.id_column).where(
                    self.scope_column == scope_id, self.id_column.in_(object_ids)
                )
            )
        )
        for i, object_id in enumerate(object_ids):
            if object_id not in found:
                raise InvalidRequestError(
                    f"No {self.kind} found with id '{object_id}'.",
                    param=param.replace("{i}", str(i)),
                    code="invalid_value",
                )

    async def page(
        self,
        session: AsyncSession,
        scope_id: str,
        params: ListParams,
        *extra: ColumnElement[bool],
    ) -> tuple[list[M], bool]:
        """A page of the scope's rows (matching ``extra``), and whether more follow."""
        scope = [self.scope_column == scope_id, *extra]
        return await paginate(session, self.model, scope, params, id_column=self.id_column)

    async def delete(
        self, session: AsyncSession, scope_id: str, object_id: str, *extra: ColumnElement[bool]
    ) -> None:
        """Delete the row with ``object_id`` in the scope, or 404."""
        result = await session.execute(
            delete(self.model)
            .where(self.id_column == object_id, self.scope_column == scope_id, *extra)
            .returning(self.id_column)
        )
        if result.first() is None:
            raise self.not_found(object_id)

    async def modify(self, session: AsyncSession, row: M, changes: Mapping[str, Any]) -> M:
        """Set the given attributes and flush; ``metadata`` (null clears it) is ``metadata_``."""
        for field, value in changes.items():
            if field == "metadata":
                field, value = "metadata_", value or {}
            setattr(row, field, value)
        await session.flush()
        return row
