"""Vector stores, their files and batches: the API side. Ingestion runs in the worker
(``vector_stores.ingest``); adding a file only records it ``in_progress`` and wakes a worker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.channels import Wake, wake_workers
from assistd.core.clock import now
from assistd.core.config import EmbeddingSettings
from assistd.core.errors import InvalidRequestError
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.files import service as files_service
from assistd.models import Chunk, Thread, VectorStore, VectorStoreFile, VectorStoreFileBatch
from assistd.vector_stores.schemas import (
    BatchFile,
    FileBatchCreate,
    FileBatchObject,
    FileCounts,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileObject,
    VectorStoreHelper,
    VectorStoreModify,
    VectorStoreObject,
    chunking_to_wire,
)

DAY = 86_400


def _expires_at(expires_after: dict[str, Any] | None, last_active_at: int | None) -> int | None:
    if not expires_after or last_active_at is None:
        return None
    return last_active_at + int(expires_after["days"]) * DAY


async def _counts(
    session: AsyncSession, column: Any, keys: Sequence[str]
) -> dict[str, tuple[FileCounts, int]]:
    """File counts and usage bytes per store (or batch)."""
    out: dict[str, tuple[FileCounts, int]] = defaultdict(lambda: (FileCounts(), 0))
    if not keys:
        return out
    rows = await session.execute(
        select(
            column,
            VectorStoreFile.status,
            func.count(),
            func.coalesce(func.sum(VectorStoreFile.usage_bytes), 0),
        )
        .where(column.in_(keys))
        .group_by(column, VectorStoreFile.status)
    )
    for key, status, count, usage in rows.tuples():
        counts, total_usage = out[key]
        if status in ("in_progress", "completed", "failed", "cancelled"):
            setattr(counts, status, getattr(counts, status) + int(count))
        counts.total += int(count)
        out[key] = (counts, total_usage + int(usage))
    return out


def store_status(store: VectorStore, counts: FileCounts) -> str:
    """``expired`` past its expiry, ``in_progress`` while files are ingesting."""
    if store.expires_at is not None and store.expires_at <= now():
        return "expired"
    return "in_progress" if counts.in_progress else "completed"


async def to_wire_many(session: AsyncSession, stores: list[VectorStore]) -> list[VectorStoreObject]:
    """API shapes of stores, with counts from one query."""
    counts = await _counts(session, VectorStoreFile.vector_store_id, [s.id for s in stores])
    out = []
    for s in stores:
        file_counts, usage = counts[s.id]
        out.append(
            VectorStoreObject(
                id=s.id,
                created_at=s.created_at,
                name=s.name or "",
                usage_bytes=usage,
                file_counts=file_counts,
                status=store_status(s, file_counts),
                expires_after=s.expires_after,
                expires_at=s.expires_at,
                last_active_at=s.last_active_at,
                metadata=s.metadata_,
            )
        )
    return out


async def to_wire(session: AsyncSession, store: VectorStore) -> VectorStoreObject:
    """API shape of one store."""
    return (await to_wire_many(session, [store]))[0]


def file_to_wire(f: VectorStoreFile) -> VectorStoreFileObject:
    """API shape of a vector-store file."""
    return VectorStoreFileObject(
        id=f.file_id,
        usage_bytes=f.usage_bytes,
        created_at=f.created_at,
        vector_store_id=f.vector_store_id,
        status=f.status,
        last_error=f.last_error,
        chunking_strategy=f.chunking_strategy,
        attributes=f.attributes,
    )


async def batch_to_wire(session: AsyncSession, batch: VectorStoreFileBatch) -> FileBatchObject:
    """API shape of a batch, counts from its files."""
    counts, _ = (await _counts(session, VectorStoreFile.batch_id, [batch.id]))[batch.id]
    if counts.in_progress:
        status = "in_progress"
    elif batch.cancelled:
        status = "cancelled"
    elif counts.total and counts.failed == counts.total:
        status = "failed"
    else:
        status = "completed"
    return FileBatchObject(
        id=batch.id,
        created_at=batch.created_at,
        vector_store_id=batch.vector_store_id,
        status=status,
        file_counts=counts,
    )


async def create(
    session: AsyncSession,
    project_id: str,
    req: VectorStoreCreate,
    *,
    embedding_model: str,
    dimension: int,
    default_expiry_days: int | None = None,
) -> VectorStore:
    """Create a store and queue its initial files."""
    stamp = now()
    expires_after = req.expires_after.model_dump() if req.expires_after else None
    if expires_after is None and default_expiry_days:
        expires_after = {"anchor": "last_active_at", "days": default_expiry_days}
    store = VectorStore(
        id=ids.new_id(ids.VECTOR_STORE),
        project_id=project_id,
        created_at=stamp,
        name=req.name,
        description=req.description,
        metadata_=req.metadata or {},
        expires_after=expires_after,
        expires_at=_expires_at(expires_after, stamp),
        last_active_at=stamp,
        embedding_model=embedding_model,
        dimension=dimension,
    )
    session.add(store)
    await session.flush()
    if req.file_ids:
        await files_service.require_files(session, project_id, req.file_ids, "file_ids[{i}]")
        strategy = chunking_to_wire(req.chunking_strategy)
        for file_id in req.file_ids:
            await _add_file(session, store, file_id, strategy, {}, None)
        await _wake_ingest(session, store.id)
    return store


_STORES = Repository(VectorStore, "vector store", "vector_store_id")
# A vector-store file's id on the wire is its file id.
_FILES = Repository(
    VectorStoreFile, "file", "file_id", scope="vector_store_id", id_column="file_id"
)
_BATCHES = Repository(VectorStoreFileBatch, "file batch", "batch_id", scope="vector_store_id")


async def get(session: AsyncSession, project_id: str, store_id: str) -> VectorStore:
    """A store of the project, or 404."""
    return await _STORES.get(session, project_id, store_id)


async def list_stores(
    session: AsyncSession, project_id: str, params: ListParams
) -> tuple[list[VectorStore], bool]:
    """A page of the project's stores."""
    return await _STORES.page(session, project_id, params)


async def modify(
    session: AsyncSession, project_id: str, store_id: str, req: VectorStoreModify
) -> VectorStore:
    """Rename, change expiry (``null`` removes it) or metadata."""
    store = await get(session, project_id, store_id)
    changes = req.model_dump(include={"name", "metadata"}, exclude_unset=True)
    if "expires_after" in req.model_fields_set:
        expires_after = req.expires_after.model_dump() if req.expires_after else None
        changes["expires_after"] = expires_after
        changes["expires_at"] = _expires_at(expires_after, store.last_active_at)
    return await _STORES.modify(session, store, changes)


async def delete_store(session: AsyncSession, project_id: str, store_id: str) -> None:
    """Delete a store with its files' chunks (the Files themselves stay)."""
    await _STORES.delete(session, project_id, store_id)


async def require_stores(
    session: AsyncSession, project_id: str, store_ids: list[str], param: str
) -> None:
    """Fail with 400 unless every id names a vector store of the project."""
    await _STORES.require(session, project_id, store_ids, param)


async def touch(session: AsyncSession, store: VectorStore) -> None:
    """Record activity (moves an ``last_active_at`` expiry forward); an expired store stays
    expired (its chunks are purged)."""
    if store.expires_at is not None and store.expires_at <= now():
        return
    store.last_active_at = now()
    store.expires_at = _expires_at(store.expires_after, store.last_active_at)


async def _wake_ingest(session: AsyncSession, store_id: str) -> None:
    await wake_workers(session, Wake.INGEST, store_id)


async def _add_file(
    session: AsyncSession,
    store: VectorStore,
    file_id: str,
    strategy: dict[str, Any],
    attributes: dict[str, Any],
    batch_id: str | None,
) -> VectorStoreFile:
    existing = await session.get(VectorStoreFile, (store.id, file_id))
    if existing is not None:
        # Re-adding is idempotent: the file keeps its chunks; a new batch adopts it.
        if batch_id is not None:
            existing.batch_id = batch_id
        return existing
    row = VectorStoreFile(
        vector_store_id=store.id,
        file_id=file_id,
        project_id=store.project_id,
        created_at=now(),
        status="in_progress",
        last_error=None,
        usage_bytes=0,
        chunking_strategy=strategy,
        attributes=attributes,
        batch_id=batch_id,
        worker_id=None,
        heartbeat_at=None,
        attempts=0,
    )
    session.add(row)
    await session.flush()
    return row


async def add_file(
    session: AsyncSession, project_id: str, store_id: str, req: VectorStoreFileCreate
) -> VectorStoreFile:
    """Attach a File to a store; a worker ingests it."""
    store = await get(session, project_id, store_id)
    await files_service.require_files(session, project_id, [req.file_id], "file_id")
    row = await _add_file(
        session,
        store,
        req.file_id,
        chunking_to_wire(req.chunking_strategy),
        dict(req.attributes or {}),
        None,
    )
    await touch(session, store)
    await _wake_ingest(session, store.id)
    return row


async def get_file(
    session: AsyncSession, project_id: str, store_id: str, file_id: str
) -> VectorStoreFile:
    """A file of the caller's store, or 404."""
    await get(session, project_id, store_id)
    return await _FILES.get(session, store_id, file_id)


async def list_files(
    session: AsyncSession,
    project_id: str,
    store_id: str,
    params: ListParams,
    status: str | None,
    batch_id: str | None = None,
) -> tuple[list[VectorStoreFile], bool]:
    """A page of a store's (or a batch's) files, optionally of one status."""
    await get(session, project_id, store_id)
    extra = []
    if batch_id is not None:
        extra.append(VectorStoreFile.batch_id == batch_id)
    if status is not None:
        extra.append(VectorStoreFile.status == status)
    return await _FILES.page(session, store_id, params, *extra)


async def update_file(
    session: AsyncSession, project_id: str, store_id: str, file_id: str, attributes: Any
) -> VectorStoreFile:
    """Replace a file's attributes (also on its chunks, which filters read)."""
    row = await get_file(session, project_id, store_id, file_id)
    row.attributes = dict(attributes or {})
    chunks = await session.scalars(
        select(Chunk).where(Chunk.vector_store_id == store_id, Chunk.file_id == file_id)
    )
    for chunk in chunks:
        chunk.attributes = row.attributes
    await session.flush()
    return row


async def delete_file(session: AsyncSession, project_id: str, store_id: str, file_id: str) -> None:
    """Detach a file (its chunks go with it; the File stays)."""
    await get_file(session, project_id, store_id, file_id)
    await session.execute(
        delete(VectorStoreFile).where(
            VectorStoreFile.vector_store_id == store_id, VectorStoreFile.file_id == file_id
        )
    )


async def file_content(
    session: AsyncSession, project_id: str, store_id: str, file_id: str
) -> list[str]:
    """The parsed text of a file, chunk by chunk."""
    await get_file(session, project_id, store_id, file_id)
    rows = await session.scalars(
        select(Chunk.content)
        .where(Chunk.vector_store_id == store_id, Chunk.file_id == file_id)
        .order_by(Chunk.chunk_index)
    )
    return list(rows)


async def create_batch(
    session: AsyncSession, project_id: str, store_id: str, req: FileBatchCreate
) -> VectorStoreFileBatch:
    """Attach many files at once."""
    if (req.file_ids is None) == (req.files is None):
        raise InvalidRequestError(
            "Provide exactly one of 'file_ids' or 'files'.",
            param="file_ids",
            code="invalid_value",
        )
    store = await get(session, project_id, store_id)
    entries = req.files or [BatchFile(file_id=f) for f in req.file_ids or []]
    file_ids = [e.file_id for e in entries]
    param = "files[{i}].file_id" if req.files is not None else "file_ids[{i}]"
    await files_service.require_files(session, project_id, file_ids, param)
    batch = VectorStoreFileBatch(
        id=ids.new_id(ids.FILE_BATCH),
        project_id=project_id,
        vector_store_id=store.id,
        created_at=now(),
        cancelled=False,
    )
    session.add(batch)
    await session.flush()
    for entry in entries:
        strategy = chunking_to_wire(entry.chunking_strategy or req.chunking_strategy)
        attributes = dict(entry.attributes or req.attributes or {})
        await _add_file(session, store, entry.file_id, strategy, attributes, batch.id)
    await touch(session, store)
    await _wake_ingest(session, store.id)
    await session.flush()
    return batch


async def get_batch(
    session: AsyncSession, project_id: str, store_id: str, batch_id: str
) -> VectorStoreFileBatch:
    """A batch of the caller's store, or 404."""
    await get(session, project_id, store_id)
    return await _BATCHES.get(session, store_id, batch_id)


async def cancel_batch(
    session: AsyncSession, project_id: str, store_id: str, batch_id: str
) -> VectorStoreFileBatch:
    """Cancel the batch's files that are not ingested yet."""
    batch = await get_batch(session, project_id, store_id, batch_id)
    batch.cancelled = True
    pending = await session.scalars(
        select(VectorStoreFile).where(
            VectorStoreFile.batch_id == batch_id, VectorStoreFile.status == "in_progress"
        )
    )
    for row in pending:
        row.status = "cancelled"
    await session.flush()
    return batch


THREAD_STORE_DAYS = 7
"""Stores made for a thread (attachments, the ``vector_stores`` helper) expire after a week
without activity, as OpenAI's did."""


async def create_from_helper(
    session: AsyncSession,
    project_id: str,
    helper: VectorStoreHelper,
    embeddings: EmbeddingSettings,
    *,
    expire: bool,
) -> VectorStore:
    """The store that ``tool_resources.file_search.vector_stores[0]`` asks for."""
    request = VectorStoreCreate(
        file_ids=helper.file_ids,
        chunking_strategy=helper.chunking_strategy,
        metadata=helper.metadata,
    )
    return await create(
        session,
        project_id,
        request,
        embedding_model=embeddings.model,
        dimension=embeddings.dimension,
        default_expiry_days=THREAD_STORE_DAYS if expire else None,
    )


async def attach_to_thread(
    session: AsyncSession,
    thread: Thread,
    file_ids: list[str],
    embeddings: EmbeddingSettings,
) -> None:
    """Add files attached for file_search to the thread's store, creating it if needed."""
    if not file_ids:
        return
    resources = dict(thread.tool_resources or {})
    ids_now = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
    store = None
    if ids_now:
        store = await session.get(VectorStore, ids_now[0])
    if store is None:
        store = await create(
            session,
            thread.project_id,
            VectorStoreCreate(),
            embedding_model=embeddings.model,
            dimension=embeddings.dimension,
            default_expiry_days=THREAD_STORE_DAYS,
        )
        resources["file_search"] = {"vector_store_ids": [store.id]}
        thread.tool_resources = resources
    strategy = chunking_to_wire(None)
    for file_id in dict.fromkeys(file_ids):
        await _add_file(session, store, file_id, strategy, {}, None)
    await touch(session, store)
    await _wake_ingest(session, store.id)


PURGE_BATCH = 5000


async def files_in_progress(session: AsyncSession, store_ids: Sequence[str]) -> int:
    """How many files of these stores are still being ingested."""
    if not store_ids:
        return 0
    count = await session.scalar(
        select(func.count()).where(
            VectorStoreFile.vector_store_id.in_(store_ids),
            VectorStoreFile.status == "in_progress",
        )
    )
    return int(count or 0)


async def purge_expired(session: AsyncSession) -> int:
    """Delete up to ``PURGE_BATCH`` chunks (and their vectors) of expired stores; their files
    then count no bytes. Returns how many chunks went."""
    expired = select(VectorStore.id).where(
        VectorStore.expires_at.is_not(None), VectorStore.expires_at <= now()
    )
    doomed = (
        select(Chunk.id)
        .where(Chunk.vector_store_id.in_(expired))
        .limit(PURGE_BATCH)
        .scalar_subquery()
    )
    result = await session.execute(delete(Chunk).where(Chunk.id.in_(doomed)))
    await session.execute(
        update(VectorStoreFile)
        .where(VectorStoreFile.vector_store_id.in_(expired), VectorStoreFile.usage_bytes != 0)
        .values(usage_bytes=0)
    )
    return int(getattr(result, "rowcount", 0) or 0)
