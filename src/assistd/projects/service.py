"""Projects and API keys: creation, lookup by key, revocation."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.channels import KEYS_CHANNEL, notify
from assistd.core.clock import now
from assistd.models import ApiKey, Project

KEY_PREFIX = "sk-assistd-"


def hash_key(raw: str) -> str:
    """The stored form of a key: its SHA-256 hex digest."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key; ``secret`` is shown once and never stored."""

    id: str
    project_id: str
    project_name: str
    secret: str


async def get_or_create_project(session: AsyncSession, name: str) -> Project:
    """The project called ``name``, created when missing."""
    project = await session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(id=ids.new_id(ids.PROJECT), name=name, created_at=now())
        session.add(project)
        await session.flush()
    return project


async def create_key(session: AsyncSession, project_name: str, name: str | None = None) -> NewKey:
    """Mint a key for ``project_name`` (creating the project if needed)."""
    project = await get_or_create_project(session, project_name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=ids.new_id(ids.API_KEY),
        project_id=project.id,
        name=name,
        key_hash=hash_key(secret),
        key_hint=secret[: len(KEY_PREFIX) + 4] + "…" + secret[-4:],
        created_at=now(),
    )
    session.add(key)
    await session.flush()
    return NewKey(id=key.id, project_id=project.id, project_name=project.name, secret=secret)


async def project_for_digest(session: AsyncSession, digest: str) -> str | None:
    """The project id of the active key with this digest, or ``None``."""
    return await session.scalar(
        select(ApiKey.project_id).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )


async def list_keys(session: AsyncSession) -> list[tuple[ApiKey, str]]:
    """Every key with its project name."""
    rows = await session.execute(
        select(ApiKey, Project.name).join(Project).order_by(ApiKey.created_at, ApiKey.id)
    )
    return [(key, name) for key, name in rows.tuples()]


async def revoke_key(session: AsyncSession, key_id: str) -> bool:
    """Revoke a key by id; ``False`` when no active key has that id. At commit every API
    process hears of it (``KEYS_CHANNEL``) and forgets the key it may have cached."""
    digest = await session.scalar(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now())
        .returning(ApiKey.key_hash)
    )
    if digest is None:
        return False
    await notify(session, KEYS_CHANNEL, digest)
    return True


async def count_keys(session: AsyncSession) -> int:
    """How many keys exist (revoked included)."""
    return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)
