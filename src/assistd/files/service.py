"""Files: metadata in Postgres, bytes in the storage backend."""

from __future__ import annotations

from typing import Any, BinaryIO

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.clock import now
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.files.schemas import FileObject
from assistd.files.storage import FileStorage
from assistd.models import File


def to_wire(f: File) -> FileObject:
    """The API shape of a file."""
    return FileObject(
        id=f.id,
        bytes=f.bytes,
        created_at=f.created_at,
        expires_at=f.expires_at,
        filename=f.filename,
        purpose=f.purpose,
        status=f.status,
        status_details=f.status_details,
    )


async def create(
    session: AsyncSession,
    storage: FileStorage,
    project_id: str,
    *,
    filename: str,
    purpose: str,
    source: BinaryIO,
    max_bytes: int,
    expires_after_seconds: int | None = None,
) -> File:
    """Store the bytes, then the row; a failed row insert leaves no orphaned bytes."""
    file_id = ids.new_id(ids.FILE)
    key = storage_key(project_id, file_id)
    size = await storage.put(key, source, max_bytes)
    try:
        return await record(
            session,
            project_id,
            file_id,
            size=size,
            filename=filename,
            purpose=purpose,
            expires_after_seconds=expires_after_seconds,
        )
    except Exception:
        await storage.delete(key)
        raise


def storage_key(project_id: str, file_id: str) -> str:
    """Where a file's bytes live in file storage."""
    return f"{project_id}/{file_id}"


async def record(
    session: AsyncSession,
    project_id: str,
    file_id: str,
    *,
    size: int,
    filename: str,
    purpose: str,
    expires_after_seconds: int | None = None,
) -> File:
    """The row of a file whose bytes are already stored under ``storage_key``."""
    created = now()
    row = File(
        id=file_id,
        project_id=project_id,
        created_at=created,
        bytes=size,
        filename=filename,
        purpose=purpose,
        status="processed",
        status_details=None,
        expires_at=created + expires_after_seconds if expires_after_seconds else None,
        storage_key=storage_key(project_id, file_id),
    )
    session.add(row)
    await session.flush()
    return row


EXPIRED_BATCH = 100
"""Expired files deleted per maintenance round."""


def _live() -> Any:
    """Not past its ``expires_after``: an expired file is gone even before it is deleted."""
    return or_(File.expires_at.is_(None), File.expires_at > now())


_REPO = Repository(File, "file", "file_id")


async def get(session: AsyncSession, project_id: str, file_id: str) -> File:
    """A file of the project, or 404."""
    return await _REPO.get(session, project_id, file_id, _live())


async def list_files(
    session: AsyncSession, project_id: str, params: ListParams, purpose: str | None
) -> tuple[list[File], bool]:
    """A page of the project's files, optionally of one purpose."""
    extra = [] if purpose is None else [File.purpose == purpose]
    return await _REPO.page(session, project_id, params, _live(), *extra)


async def delete_file(session: AsyncSession, project_id: str, file_id: str) -> str:
    """Delete the row; return the storage key, whose bytes the caller removes after commit."""
    row = await get(session, project_id, file_id)
    await session.execute(delete(File).where(File.id == row.id))
    return row.storage_key


async def delete_expired(session: AsyncSession) -> list[str]:
    """Delete up to ``EXPIRED_BATCH`` expired files; return their storage keys, whose bytes
    the caller removes after commit."""
    expired = (
        select(File.id)
        .where(File.expires_at <= now())
        .order_by(File.expires_at)
        .limit(EXPIRED_BATCH)
        .with_for_update(skip_locked=True)
    )
    keys = await session.scalars(
        delete(File).where(File.id.in_(expired.scalar_subquery())).returning(File.storage_key)
    )
    return list(keys)


async def require_files(
    session: AsyncSession, project_id: str, file_ids: list[str], param: str
) -> None:
    """Fail with 400 unless every id names a file of the project.

    ``param`` may hold ``{i}``, replaced by the index of the missing id.
    """
    await _REPO.require(session, project_id, file_ids, param)
