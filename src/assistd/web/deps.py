"""FastAPI dependencies shared by every router: the request's session and list parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.config import Settings
from assistd.core.pagination import ListParams


@asynccontextmanager
async def request_transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction (``SessionDep``), for an endpoint that needs one only on
    some of its paths: commit at the end of the block, then ``after_commit``'s callbacks;
    roll back when it raises."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        async with maker() as session, session.begin():
            yield session
    except BaseException:
        for _, on_rollback in getattr(request.state, "after_commit", ()):
            if on_rollback is not None:
                on_rollback()
        raise
    for on_commit, _ in getattr(request.state, "after_commit", ()):
        on_commit()


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # The request owns the transaction: commit when the endpoint returns, before the
    # response is sent (scope="function"), roll back when it raises.
    async with request_transaction(request) as session:
        yield session


def after_commit(
    request: Request,
    callback: Callable[[], None],
    on_rollback: Callable[[], None] | None = None,
) -> None:
    """Run ``callback`` once the request's transaction has committed, or ``on_rollback``
    if it does not (the endpoint or the commit raised)."""
    if not hasattr(request.state, "after_commit"):
        request.state.after_commit = []
    request.state.after_commit.append((callback, on_rollback))


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    # Autocommit: no BEGIN/COMMIT around the request's SELECTs. The session never commits,
    # so a change left in it would be silently dropped: refuse that loudly instead.
    async with maker() as session:
        yield session
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("a read-only session was used to change objects")


ReadSessionDep = Annotated[AsyncSession, Depends(_read_session, scope="function")]
"""A session for endpoints that only read (GET): no transaction, released before the response."""


async def _list_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> ListParams:
    return ListParams(limit=limit, order=order, after=after, before=before)


ListParamsDep = Annotated[ListParams, Depends(_list_params)]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]
"""The application's settings."""
