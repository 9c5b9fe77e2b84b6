"""Containers and their files: metadata in Postgres, bytes in file storage.

A container is a code_interpreter sandbox session keyed by the container id. Nothing starts
when one is created or given files: the session starts when code first runs in it, and every
execution first places the container's files that are not in /mnt/data yet (``sandbox.py``).
"""

from __future__ import annotations

import io
import posixpath
from typing import BinaryIO, Literal, cast

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.containers.schemas import (
    DEFAULT_EXPIRY_MINUTES,
    ContainerCreate,
    ContainerFileObject,
    ContainerObject,
    ExpiresAfterObject,
    MemoryLimit,
)
from assistd.core import ids
from assistd.core.channels import Wake, wake_workers
from assistd.core.clock import now
from assistd.core.errors import ConflictingStateError, InvalidRequestError, NotFoundError
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.files import service as files_service
from assistd.files.storage import FileStorage
from assistd.models import Container, ContainerFile, File
from assistd.sandbox.paths import data_path

_CONTAINERS = Repository(Container, "container", "container_id")
_FILES = Repository(ContainerFile, "container file", "file_id", scope="container_id")


def status(c: Container, at: int | None = None) -> Literal["running", "expired"]:
    """``expired`` once ``expires_after`` minutes passed since the last activity."""
    moment = now() if at is None else at
    return "expired" if moment >= c.last_active_at + c.expires_after_minutes * 60 else "running"


def to_wire(c: Container) -> ContainerObject:
    """The API shape of a container."""
    return ContainerObject(
        id=c.id,
        created_at=c.created_at,
        name=c.name,
        status=status(c),
        expires_after=ExpiresAfterObject(minutes=c.expires_after_minutes),
        last_active_at=c.last_active_at,
        memory_limit=cast(MemoryLimit, c.memory_limit),
    )


def file_to_wire(f: ContainerFile) -> ContainerFileObject:
    """The API shape of a container file."""
    return ContainerFileObject(
        id=f.id,
        bytes=f.bytes,
        container_id=f.container_id,
        created_at=f.created_at,
        path=f.path,
        source=f.source,
    )


def filename(f: ContainerFile) -> str:
    """The file's name in /mnt/data."""
    return posixpath.basename(f.path)


async def create(
    session: AsyncSession, storage: FileStorage, project_id: str, req: ContainerCreate
) -> Container:
    """A container with copies of ``file_ids`` (a failure leaves no copied bytes behind)."""
    if req.network_policy is not None and req.network_policy.type == "allowlist":
        raise InvalidRequestError(
            "Invalid value for 'network_policy.type': 'allowlist'. assistd's sandboxes have "
            "no network access; the supported value is 'disabled'.",
            param="network_policy.type",
            code="invalid_value",
        )
    if req.skills:
        raise InvalidRequestError(
            "Skills are not supported by this server.", param="skills", code="invalid_value"
        )
    created = now()
    row = Container(
        id=ids.new_id(ids.CONTAINER),
        project_id=project_id,
        created_at=created,
        name=req.name,
        last_active_at=created,
        expires_after_minutes=(
            req.expires_after.minutes if req.expires_after else DEFAULT_EXPIRY_MINUTES
        ),
        memory_limit=req.memory_limit or "1g",
    )
    session.add(row)
    await session.flush()
    written: list[str] = []
    taken: set[str] = set()
    try:
        for i, file_id in enumerate(req.file_ids or []):
            source = await _source_file(session, project_id, file_id, f"file_ids[{i}]")
            session.add(await _copy(session, storage, row, source, taken, written))
        await session.flush()
    except BaseException:
        for key in written:
            await storage.delete(key)
        raise
    return row


async def get(
    session: AsyncSession, project_id: str, container_id: str, *, lock: bool = False
) -> Container:
    """A container of the project, or 404; ``lock`` serializes changes to its files."""
    return await _CONTAINERS.get(session, project_id, container_id, lock="update" if lock else None)


async def list_containers(
    session: AsyncSession, project_id: str, params: ListParams, name: str | None
) -> tuple[list[Container], bool]:
    """A page of the project's containers, optionally those of one name."""
    extra = [] if name is None else [Container.name == name]
    return await _CONTAINERS.page(session, project_id, params, *extra)


async def delete_container(session: AsyncSession, project_id: str, container_id: str) -> list[str]:
    """Delete a container and its files; return their storage keys (the caller removes the
    bytes after commit). Workers remove its sandbox session."""
    keys = list(
        await session.scalars(
            select(ContainerFile.storage_key).where(
                ContainerFile.container_id == container_id, ContainerFile.project_id == project_id
            )
        )
    )
    await _CONTAINERS.delete(session, project_id, container_id)
    # The session is keyed by the container id, so a deleted thread's cleanup fits it.
    await wake_workers(session, Wake.THREAD_DELETED, container_id)
    return keys


async def expired_among(session: AsyncSession, container_ids: list[str]) -> list[str]:
    """Which of ``container_ids`` have expired or are gone (their sessions may go)."""
    if not container_ids:
        return []
    rows = {
        c.id: c
        for c in await session.scalars(select(Container).where(Container.id.in_(container_ids)))
    }
    stamp = now()
    return [i for i in container_ids if i not in rows or status(rows[i], stamp) == "expired"]


async def activate(session: AsyncSession, project_id: str, container_id: str) -> Container:
    """Lock a running container and mark it active now; 400 once it has expired."""
    row = await get(session, project_id, container_id, lock=True)
    stamp = now()
    if status(row, stamp) == "expired":
        raise ConflictingStateError(
            f"Container '{container_id}' has expired and can no longer be used.",
            param="container_id",
            code="container_expired",
        )
    await session.execute(
        update(Container).where(Container.id == row.id).values(last_active_at=stamp)
    )
    row.last_active_at = stamp
    return row


async def add_upload(
    session: AsyncSession,
    storage: FileStorage,
    project_id: str,
    container_id: str,
    *,
    name: str,
    source: BinaryIO,
    max_bytes: int,
) -> ContainerFile:
    """Store uploaded bytes as a file of the container (under /mnt/data/<name>)."""
    container = await activate(session, project_id, container_id)
    file_id = ids.new_id(ids.CONTAINER_FILE)
    key = _storage_key(container, file_id)
    size = await storage.put(key, source, max_bytes)
    try:
        taken = await _taken(session, container.id)
        row = _row(container, file_id, data_path(name, file_id, taken), size, key)
        session.add(row)
        await session.flush()
    except BaseException:
        await storage.delete(key)
        raise
    return row


async def add_copy(
    session: AsyncSession, storage: FileStorage, project_id: str, container_id: str, file_id: str
) -> ContainerFile:
    """Copy an uploaded file of the project into the container."""
    container = await activate(session, project_id, container_id)
    source = await _source_file(session, project_id, file_id, "file_id")
    written: list[str] = []
    try:
        row = await _copy(
            session, storage, container, source, await _taken(session, container.id), written
        )
        session.add(row)
        await session.flush()
    except BaseException:
        for key in written:
            await storage.delete(key)
        raise
    return row


async def keep_output(
    session: AsyncSession,
    storage: FileStorage,
    project_id: str,
    container_id: str,
    name: str,
    data: bytes,
    max_bytes: int,
) -> ContainerFile:
    """A file the code wrote (or a plot it showed) as a file of the container, by its path
    under /mnt/data (``name``: that path, or a bare name); the file already at that path,
    if any, gets the new bytes and keeps its id."""
    container = await get(session, project_id, container_id, lock=True)
    path = name if name.startswith("/mnt/data/") else posixpath.join("/mnt/data", name)
    row = await session.scalar(
        select(ContainerFile).where(
            ContainerFile.container_id == container.id, ContainerFile.path == path
        )
    )
    file_id = row.id if row is not None else ids.new_id(ids.CONTAINER_FILE)
    key = _storage_key(container, file_id)
    size = await storage.put(key, io.BytesIO(data), max_bytes)
    if row is not None:
        row.bytes = size
        await session.flush()
        return row
    made = _row(container, file_id, path, size, key)
    made.source = "assistant"
    session.add(made)
    await session.flush()
    return made


async def list_files(
    session: AsyncSession, project_id: str, container_id: str, params: ListParams
) -> tuple[list[ContainerFile], bool]:
    """A page of a container's files."""
    await get(session, project_id, container_id)
    return await _FILES.page(session, container_id, params, ContainerFile.project_id == project_id)


async def all_files(
    session: AsyncSession, project_id: str, container_id: str
) -> list[ContainerFile]:
    """Every file of a container, oldest first (what its sandbox gets)."""
    rows = await session.scalars(
        select(ContainerFile)
        .where(ContainerFile.container_id == container_id, ContainerFile.project_id == project_id)
        .order_by(ContainerFile.seq)
    )
    return list(rows)


async def get_file(
    session: AsyncSession, project_id: str, container_id: str, file_id: str
) -> ContainerFile:
    """One file of a container of the project, or 404."""
    await get(session, project_id, container_id)
    return await _FILES.get(session, container_id, file_id, ContainerFile.project_id == project_id)


async def delete_file(
    session: AsyncSession, project_id: str, container_id: str, file_id: str
) -> str:
    """Delete a file of a container; return its storage key (removed after commit)."""
    row = await get_file(session, project_id, container_id, file_id)
    await session.execute(delete(ContainerFile).where(ContainerFile.id == row.id))
    return row.storage_key


def _storage_key(container: Container, file_id: str) -> str:
    return f"{container.project_id}/{container.id}/{file_id}"


def _row(container: Container, file_id: str, path: str, size: int, key: str) -> ContainerFile:
    return ContainerFile(
        id=file_id,
        project_id=container.project_id,
        container_id=container.id,
        created_at=now(),
        bytes=size,
        path=path,
        source="user",
        storage_key=key,
    )


async def _taken(session: AsyncSession, container_id: str) -> set[str]:
    """The names already used under /mnt/data (the container row is locked)."""
    paths = await session.scalars(
        select(ContainerFile.path).where(ContainerFile.container_id == container_id)
    )
    return {posixpath.basename(p) for p in paths}


async def _source_file(session: AsyncSession, project_id: str, file_id: str, param: str) -> File:
    """An uploaded file of the project to copy in; 400 naming ``param`` otherwise."""
    try:
        return await files_service.get(session, project_id, file_id)
    except NotFoundError:
        raise InvalidRequestError(
            f"No file found with id '{file_id}'.", param=param, code="invalid_value"
        ) from None


async def _copy(
    session: AsyncSession,
    storage: FileStorage,
    container: Container,
    source: File,
    taken: set[str],
    written: list[str],
) -> ContainerFile:
    """A copy of ``source``'s bytes as a new container file (its own bytes: deleting the
    uploaded file later leaves the container's copy)."""
    file_id = ids.new_id(ids.CONTAINER_FILE)
    key = _storage_key(container, file_id)
    written.append(key)
    size = await storage.concat(key, [source.storage_key])
    return _row(container, file_id, data_path(source.filename, file_id, taken), size, key)
