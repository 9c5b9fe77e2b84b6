"""Ingestion, run by workers: parse a file, chunk it by tokens, embed windows of each chunk,
store chunks and vectors. The ``vector_store_files`` rows in ``in_progress`` are the queue;
a claim is a lease (``worker_id`` + ``heartbeat_at``), so a crashed worker's files are picked
up again, and ingesting twice is harmless (a file's old chunks are replaced). Parsing and
chunking run in a parser process with memory and time limits (``parser_process``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core import metrics
from assistd.core.db import transaction
from assistd.files.storage import FileStorage
from assistd.llm.embeddings import Embedder
from assistd.models import Chunk, ChunkEmbedding, File, VectorStore, VectorStoreFile
from assistd.vector_stores import chunking, parsing
from assistd.vector_stores.parser_process import ParserPool

log = logging.getLogger(__name__)

WINDOW_STRIDE = 32
"""Tokens shared by consecutive windows of a chunk (``Embedder.window_tokens``)."""
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Claimed:
    """A file this worker is ingesting."""

    vector_store_id: str
    file_id: str
    claimed_at: float = field(default_factory=time.monotonic)


SMALL_FILE_BYTES = 1024 * 1024
"""Pending files up to this size are taken before larger ones, so a small attachment does
not wait behind every large PDF uploaded before it."""


async def claim(session: AsyncSession, worker_id: str, lease_seconds: float) -> Claimed | None:
    """Take the oldest pending small file, else the oldest pending one (or one whose worker
    stopped heartbeating)."""
    stale = time.time() - lease_seconds
    row = await session.scalar(
        select(VectorStoreFile)
        .join(File, File.id == VectorStoreFile.file_id)
        .where(
            VectorStoreFile.status == "in_progress",
            or_(VectorStoreFile.worker_id.is_(None), VectorStoreFile.heartbeat_at < stale),
        )
        .order_by(File.bytes > SMALL_FILE_BYTES, VectorStoreFile.seq)
        .with_for_update(of=VectorStoreFile, skip_locked=True)
        .limit(1)
    )
    if row is None:
        return None
    row.attempts += 1
    if row.attempts > MAX_ATTEMPTS:
        row.status = "failed"
        row.worker_id = None
        row.last_error = {
            "code": "server_error",
            "message": "Ingestion was interrupted too many times.",
        }
        return None
    row.worker_id = worker_id
    row.heartbeat_at = time.time()
    return Claimed(row.vector_store_id, row.file_id)


async def heartbeat(session: AsyncSession, worker_id: str) -> None:
    """Extend the lease of every file this worker is ingesting (one being finished holds
    its row lock and needs none, so it is skipped rather than waited for)."""
    rows = await session.scalars(
        select(VectorStoreFile)
        .where(VectorStoreFile.worker_id == worker_id, VectorStoreFile.status == "in_progress")
        .with_for_update(skip_locked=True)
    )
    for row in rows:
        row.heartbeat_at = time.time()


async def _finish(
    maker: async_sessionmaker[AsyncSession],
    job: Claimed,
    worker_id: str,
    *,
    error: dict[str, str] | None = None,
    chunks: list[chunking.Chunk] | None = None,
    vectors: list[tuple[int, list[float]]] | None = None,
    dimension: int = 0,
) -> None:
    """Store the outcome, unless the file was cancelled, removed or taken over meanwhile."""
    async with transaction(maker) as session:
        row = await session.scalar(
            select(VectorStoreFile)
            .where(
                VectorStoreFile.vector_store_id == job.vector_store_id,
                VectorStoreFile.file_id == job.file_id,
            )
            .with_for_update()
        )
        if row is None or row.status != "in_progress" or row.worker_id != worker_id:
            return
        row.worker_id = None
        row.heartbeat_at = None
        if error is not None:
            row.status = "failed"
            row.last_error = error
            metrics.INGESTED_FILES.labels("failed").inc()
            _log_end(job, "failed", error=error.get("code"))
            return
        assert chunks is not None
        assert vectors is not None
        await session.execute(
            delete(Chunk).where(
                Chunk.vector_store_id == job.vector_store_id, Chunk.file_id == job.file_id
            )
        )
        chunk_ids: list[int] = []
        if chunks:
            result = await session.execute(
                insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
                [
                    {
                        "vector_store_id": job.vector_store_id,
                        "file_id": job.file_id,
                        "chunk_index": c.index,
                        "page": c.page,
                        "tokens": c.tokens,
                        "content": c.text,
                        "attributes": row.attributes,
                    }
                    for c in chunks
                ],
            )
            chunk_ids = [r[0] for r in result.all()]
        if vectors:
            await session.execute(
                insert(ChunkEmbedding),
                [
                    {
                        "chunk_id": chunk_ids[index],
                        "vector_store_id": job.vector_store_id,
                        "file_id": job.file_id,
                        "dimension": dimension,
                        "embedding": vector,
                    }
                    for index, vector in vectors
                ],
            )
        text_bytes = sum(len(c.text.encode()) for c in chunks)
        row.usage_bytes = text_bytes + len(vectors) * dimension * 2
        row.status = "completed"
        row.last_error = None
        metrics.INGESTED_FILES.labels("completed").inc()
        _log_end(job, "completed", chunks=len(chunks), usage_bytes=row.usage_bytes)


def _log_end(job: Claimed, status: str, **details: str | int | None) -> None:
    """One line per ingested file: its outcome, size or error, and time since the claim."""
    ms = round((time.monotonic() - job.claimed_at) * 1000, 1)
    shown = " ".join(f"{k}={v}" for k, v in details.items())
    fields = {"file_id": job.file_id, "vector_store_id": job.vector_store_id, "status": status}
    log.info(
        "file %s in %s %s %s %.1f ms",
        job.file_id,
        job.vector_store_id,
        status,
        shown,
        ms,
        extra={"fields": {**fields, **details, "duration_ms": ms}},
    )


def _windows(embedder: Embedder, chunks: list[chunking.Chunk], max_tokens: int) -> list[list[str]]:
    """The texts to embed for each chunk."""
    # Local models see each chunk as overlapping windows (MiniLM reads 256 wordpieces;
    # a static model's average over a long text blurs it); remote ones embed it whole.
    size = min(embedder.window_tokens or max(max_tokens * 2, 8192), embedder.max_tokens)
    stride = min(WINDOW_STRIDE, size - 1)
    if size >= max_tokens:
        return [embedder.windows(c.text, size, stride) for c in chunks]
    # Windows are cut per segment (a chunk's overlap with each neighbour, and what is its
    # own), so a window in an overlap is the same text in both chunks: each is embedded
    # once (half the work with the default 800/400 chunks).
    cut: dict[str, list[str]] = {}
    for chunk in chunks:
        for seg in chunk.segments():
            if seg not in cut:
                cut[seg] = embedder.windows(seg, size, stride)
    return [list(dict.fromkeys(w for seg in c.segments() for w in cut[seg])) for c in chunks]


async def ingest(
    maker: async_sessionmaker[AsyncSession],
    storage: FileStorage,
    embedder_for: Callable[[str], Embedder],
    job: Claimed,
    worker_id: str,
    parsers: ParserPool,
) -> None:
    """Ingest one claimed file; every failure ends the file ``failed`` with ``last_error``."""
    try:
        async with transaction(maker) as session:
            row = await session.get_one(VectorStoreFile, (job.vector_store_id, job.file_id))
            file = await session.get_one(File, job.file_id)
            store = await session.get_one(VectorStore, job.vector_store_id)
            strategy = row.chunking_strategy.get("static", {})
            max_tokens = int(strategy.get("max_chunk_size_tokens", chunking.DEFAULT_MAX_TOKENS))
            overlap = int(strategy.get("chunk_overlap_tokens", chunking.DEFAULT_OVERLAP_TOKENS))
            filename, key = file.filename, file.storage_key
            model, dimension = store.embedding_model, store.dimension
        data = await storage.read(key)
        chunks = await parsers.chunk(filename, data, max_tokens, overlap)
        del data
        embedder = embedder_for(model)
        if embedder.dimension != dimension:
            raise RuntimeError(
                f"the store's model {model} gives {embedder.dimension} dimensions, not {dimension}"
            )
        # Cutting windows tokenizes the whole text: off the event loop, which heartbeats.
        per_chunk = await asyncio.to_thread(_windows, embedder, chunks, max_tokens)
        # Similar lengths batched together: a batch is padded to its longest text.
        unique = sorted(dict.fromkeys(w for ws in per_chunk for w in ws), key=len)
        embedded: dict[str, list[float]] = {}
        for start in range(0, len(unique), 64):
            part = unique[start : start + 64]
            embedded.update(zip(part, await embedder.embed(part), strict=True))
        vectors = [(index, embedded[w]) for index, ws in enumerate(per_chunk) for w in ws]
        await _finish(maker, job, worker_id, chunks=chunks, vectors=vectors, dimension=dimension)
    except parsing.ParseError as exc:
        await _finish(maker, job, worker_id, error={"code": exc.code, "message": str(exc)})
    except Exception as exc:
        log.exception("ingesting %s into %s failed", job.file_id, job.vector_store_id)
        await _finish(
            maker,
            job,
            worker_id,
            error={"code": "server_error", "message": f"Ingestion failed: {exc}"},
        )


EmbedderFactory = Callable[[str], Embedder]


class EmbedderLookup:
    """Embedders by the model name a store was created with (one instance each)."""

    def __init__(self, factory: EmbedderFactory) -> None:
        self._factory = factory
        self._cache: dict[str, Embedder] = {}

    def __call__(self, model: str) -> Embedder:
        """The embedder for ``model``."""
        if model not in self._cache:
            self._cache[model] = self._factory(model)
        return self._cache[model]
