"""The shared repository base on the real database (each test rolled back): scoping, the
404 and 400 it raises, cursors, locks and modify."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core.config import Settings
from assistd.core.db import async_url, create_engine, dispose, make_sessionmaker
from assistd.core.errors import InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams
from assistd.core.repository import Lock, Repository
from assistd.models import Conversation, ConversationItem
from assistd.projects import service as projects_service
from tests.conftest import Database

REPO = Repository(Conversation, "conversation", "conversation_id")
ITEMS = Repository(ConversationItem, "item", "item_id", scope="conversation_id")


@pytest.fixture
async def session(database: Database, tmp_path: Path) -> AsyncIterator[AsyncSession]:
    settings = Settings(database_url=database.url, data_dir=tmp_path)
    engine = create_engine(async_url(database.url), settings)
    try:
        async with make_sessionmaker(engine)() as s:
            await s.begin()
            yield s
            await s.rollback()
    finally:
        await dispose(engine)


async def _project(session: AsyncSession) -> str:
    key = await projects_service.create_key(session, f"repo-{uuid.uuid4().hex[:10]}")
    return key.project_id


async def _conversations(session: AsyncSession, project: str, n: int) -> list[str]:
    made = [f"conv_{uuid.uuid4().hex}" for _ in range(n)]
    for i, cid in enumerate(made):
        session.add(Conversation(id=cid, project_id=project, created_at=i, metadata_={"i": str(i)}))
        await session.flush()  # one at a time: seq follows the list's order
    return made


async def test_get_finds_only_in_scope_and_404s_with_name_and_param(session: AsyncSession) -> None:
    mine, theirs = await _project(session), await _project(session)
    [cid] = await _conversations(session, mine, 1)
    assert (await REPO.get(session, mine, cid)).id == cid
    with pytest.raises(NotFoundError) as caught:
        await REPO.get(session, theirs, cid)
    assert caught.value.message == f"No conversation found with id '{cid}'."
    assert caught.value.param == "conversation_id"
    with pytest.raises(NotFoundError):
        await REPO.get(session, mine, cid, Conversation.created_at == 99)
    locks: tuple[Lock, ...] = ("update", "share")
    for lock in locks:
        assert (await REPO.get(session, mine, cid, lock=lock)).id == cid


async def test_page_walks_both_cursors_within_scope_and_filters(session: AsyncSession) -> None:
    mine, theirs = await _project(session), await _project(session)
    made = await _conversations(session, mine, 5)
    await _conversations(session, theirs, 2)
    rows, more = await REPO.page(session, mine, ListParams(limit=2))
    assert [r.id for r in rows] == [made[4], made[3]]
    assert more
    rows, more = await REPO.page(session, mine, ListParams(limit=2, after=made[3]))
    assert [r.id for r in rows] == [made[2], made[1]]
    assert more
    rows, more = await REPO.page(session, mine, ListParams(limit=2, order="asc", before=made[3]))
    assert [r.id for r in rows] == [made[1], made[2]]
    assert more
    rows, more = await REPO.page(
        session, mine, ListParams(order="asc"), Conversation.created_at > 2
    )
    assert [r.id for r in rows] == made[3:]
    assert not more
    # A cursor from another scope yields an empty page rather than a leak.
    rows, _ = await REPO.page(session, theirs, ListParams(after=made[2]))
    assert rows == []


async def test_delete_removes_in_scope_and_404s_elsewhere(session: AsyncSession) -> None:
    mine, theirs = await _project(session), await _project(session)
    first, second = await _conversations(session, mine, 2)
    with pytest.raises(NotFoundError, match="No conversation found"):
        await REPO.delete(session, theirs, first)
    await REPO.delete(session, mine, first)
    with pytest.raises(NotFoundError):
        await REPO.get(session, mine, first)
    assert (await REPO.get(session, mine, second)).id == second


async def test_child_scope_and_require_name_the_missing_index(session: AsyncSession) -> None:
    mine, theirs = await _project(session), await _project(session)
    [cid] = await _conversations(session, mine, 1)
    [other] = await _conversations(session, theirs, 1)
    session.add(
        ConversationItem(
            id="msg_repo1", project_id=mine, conversation_id=cid, created_at=0, type="x", data={}
        )
    )
    await session.flush()
    assert (await ITEMS.get(session, cid, "msg_repo1")).conversation_id == cid
    with pytest.raises(NotFoundError) as nf:
        await ITEMS.get(session, cid, "msg_repo1", ConversationItem.project_id == "proj_other")
    assert nf.value.param == "item_id"
    await REPO.require(session, mine, [cid], "ids[{i}]")
    with pytest.raises(InvalidRequestError) as caught:
        await REPO.require(session, mine, [cid, "conv_missing"], "ids[{i}]")
    assert caught.value.param == "ids[1]"
    assert caught.value.code == "invalid_value"
    assert caught.value.message == "No conversation found with id 'conv_missing'."
    with pytest.raises(InvalidRequestError, match=other):
        await REPO.require(session, mine, [other], "ids[{i}]")


async def test_modify_sets_fields_and_null_metadata_clears(session: AsyncSession) -> None:
    mine = await _project(session)
    [cid] = await _conversations(session, mine, 1)
    row = await REPO.get(session, mine, cid)
    await REPO.modify(session, row, {"created_at": 42, "metadata": None})
    session.expire(row)
    again = await REPO.get(session, mine, cid)
    assert again.created_at == 42
    assert again.metadata_ == {}
