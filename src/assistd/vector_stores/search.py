"""Hybrid retrieval: pgvector HNSW over chunk windows fused with Postgres full-text search by
reciprocal rank fusion. Scores are cosine similarities (0–1) of the best window, so
``score_threshold`` means something whatever the fusion (raised where needed so that they never
increase down the ranking)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.llm.embeddings import Embedder
from assistd.models import Chunk, ChunkEmbedding, File
from assistd.vector_stores.schemas import ComparisonFilter, CompoundFilter

RRF_K = 60
ARM_DEPTH = 50
KEYWORD_CANDIDATES = 1000
"""Keyword matches ranked at most per query (see ``_keyword``)."""

Mode = Literal["hybrid", "vector", "keyword"]


@dataclass
class Hit:
    """One retrieved chunk."""

    chunk_id: int
    file_id: str
    filename: str
    score: float
    content: str
    attributes: dict[str, Any]
    vector_store_id: str


def _value(v: Any) -> Any:
    # A JSONB-typed literal is serialised once by the type (casting ``json.dumps(v)`` to
    # JSONB encoded it twice: every value became a JSON string that equalled nothing).
    return literal(v, type_=JSONB)


def filter_clause(f: ComparisonFilter | CompoundFilter) -> ColumnElement[bool]:
    """OpenAI's attribute filters as a predicate on ``chunks.attributes``."""
    if isinstance(f, CompoundFilter):
        parts = [filter_clause(sub) for sub in f.filters]
        if not parts:
            return true()
        return and_(*parts) if f.type == "and" else or_(*parts)
    field: ColumnElement[Any] = Chunk.attributes.op("->")(f.key)
    if f.type in ("in", "nin"):
        values = f.value if isinstance(f.value, list) else [f.value]
        member = or_(*(field == _value(v) for v in values)) if values else false()
        return member if f.type == "in" else or_(field.is_(None), not_(member))
    if f.type == "eq":
        equal: ColumnElement[bool] = field == _value(f.value)
        return equal
    if f.type == "ne":
        return or_(field.is_(None), field != _value(f.value))
    ops = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
    if isinstance(f.value, (int, float)) and not isinstance(f.value, bool):
        number = cast(Chunk.attributes.op("->>")(f.key), Float)
        guard = func.jsonb_typeof(field) == "number"
        result: ColumnElement[bool] = and_(guard, getattr(number, ops[f.type])(float(f.value)))
        return result
    as_text = Chunk.attributes.op("->>")(f.key)
    compared: ColumnElement[bool] = getattr(as_text, ops[f.type])(str(f.value))
    return compared


async def _semantic(
    session: AsyncSession,
    store_ids: list[str],
    dimension: int,
    vector: list[float],
    depth: int,
    where: ColumnElement[bool] | None,
) -> dict[int, float]:
    """Chunk id → best cosine distance among its windows (the nearest ``depth`` windows)."""
    # Cast and predicate must read like the partial HNSW index for the planner to use it;
    # the dimension is a literal (an integer from our own table), not a parameter.
    emb = cast(ChunkEmbedding.embedding, HALFVEC(dimension))
    query = bindparam("qvec", vector, type_=HALFVEC(dimension))
    dist = emb.op("<=>", return_type=Float)(query)
    stmt = (
        select(ChunkEmbedding.chunk_id, dist.label("dist"))
        .where(
            ChunkEmbedding.vector_store_id.in_(store_ids),
            ChunkEmbedding.dimension == literal_column(str(int(dimension))),
        )
        .order_by(dist)
        .limit(depth)
    )
    if where is not None:
        stmt = stmt.join(Chunk, Chunk.id == ChunkEmbedding.chunk_id).where(where)
    await session.execute(text("SET LOCAL hnsw.ef_search = 100"))
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    best: dict[int, float] = {}
    for chunk_id, distance in (await session.execute(stmt)).tuples():
        if chunk_id not in best or distance < best[chunk_id]:
            best[chunk_id] = float(distance)
    return best


async def _keyword(
    session: AsyncSession,
    store_ids: list[str],
    query_text: str,
    depth: int,
    where: ColumnElement[bool] | None,
) -> list[int]:
    """Chunk ids matching the words of the query, best ``ts_rank_cd`` first.

    Ranking reads each match's whole tsvector, so a query of common words over a large store
    would rank thousands of rows: only the first ``KEYWORD_CANDIDATES`` matches are ranked
    (such a query says little by its words; the semantic arm carries it)."""
    tsquery = func.websearch_to_tsquery(literal_column("'english'"), query_text)
    matches = select(Chunk.id, Chunk.tsv).where(
        Chunk.vector_store_id.in_(store_ids), Chunk.tsv.op("@@")(tsquery)
    )
    if where is not None:
        matches = matches.where(where)
    candidates = matches.limit(KEYWORD_CANDIDATES).subquery()
    stmt = (
        select(candidates.c.id)
        .order_by(func.ts_rank_cd(candidates.c.tsv, tsquery).desc())
        .limit(depth)
    )
    return list(await session.scalars(stmt))


async def _distances(
    session: AsyncSession, chunk_ids: list[int], dimension: int, vector: list[float]
) -> dict[int, float]:
    """Best window distance of given chunks (for hits found by keywords only)."""
    if not chunk_ids:
        return {}
    emb = cast(ChunkEmbedding.embedding, HALFVEC(dimension))
    dist = emb.op("<=>", return_type=Float)(bindparam("qv", vector, type_=HALFVEC(dimension)))
    rows = await session.execute(
        select(ChunkEmbedding.chunk_id, func.min(dist))
        .where(ChunkEmbedding.chunk_id.in_(chunk_ids))
        .group_by(ChunkEmbedding.chunk_id)
    )
    return {cid: float(d) for cid, d in rows.tuples()}


async def search(
    session: AsyncSession,
    embedder: Embedder,
    store_ids: list[str],
    dimension: int,
    queries: list[str],
    *,
    max_results: int,
    score_threshold: float = 0.0,
    filters: ComparisonFilter | CompoundFilter | None = None,
    hybrid: bool = True,
    mode: Mode | None = None,
) -> list[Hit]:
    """Search ``store_ids`` with every query; fuse all arms of all queries by RRF.

    ``mode`` picks the arms: ``hybrid`` (both), ``vector`` (semantic only, also what
    ``hybrid=False`` means) or ``keyword`` (full text only; scores are still cosine)."""
    if not store_ids or not queries:
        return []
    mode = mode or ("hybrid" if hybrid else "vector")
    where = filter_clause(filters) if filters is not None else None
    vectors = await embedder.embed(queries)
    fused: dict[int, float] = defaultdict(float)
    similarity: dict[int, float] = {}
    for query_text, vector in zip(queries, vectors, strict=True):
        semantic: dict[int, float] = {}
        if mode != "keyword":
            semantic = await _semantic(session, store_ids, dimension, vector, ARM_DEPTH * 3, where)
        ranked = sorted(semantic, key=semantic.__getitem__)[:ARM_DEPTH]
        for rank, chunk_id in enumerate(ranked):
            fused[chunk_id] += 1.0 / (RRF_K + rank + 1)
            similarity[chunk_id] = max(similarity.get(chunk_id, 0.0), 1.0 - semantic[chunk_id])
        if mode != "vector":
            keyword = await _keyword(session, store_ids, query_text, ARM_DEPTH, where)
            for rank, chunk_id in enumerate(keyword):
                fused[chunk_id] += 1.0 / (RRF_K + rank + 1)
            missing = [c for c in keyword if c not in semantic]
            for chunk_id, distance in (
                await _distances(session, missing, dimension, vector)
            ).items():
                similarity[chunk_id] = max(similarity.get(chunk_id, 0.0), 1.0 - distance)
    order = sorted(fused, key=lambda c: (-fused[c], -similarity.get(c, 0.0)))
    # Scores descend in rank order: keyword evidence can rank a chunk above one of higher
    # cosine, and it then scores as high as the best chunk ranked below it.
    scores: dict[int, float] = {}
    floor = 0.0
    for chunk_id in reversed(order):
        floor = max(floor, min(1.0, similarity.get(chunk_id, 0.0)))
        scores[chunk_id] = floor
    kept = [c for c in order if scores[c] >= score_threshold][:max_results]
    if not kept:
        return []
    rows = await session.execute(
        select(
            Chunk.id,
            Chunk.file_id,
            File.filename,
            Chunk.content,
            Chunk.attributes,
            Chunk.vector_store_id,
        )
        .join(File, File.id == Chunk.file_id)
        .where(Chunk.id.in_(kept))
    )
    found = {row[0]: row for row in rows.tuples()}
    hits = []
    for chunk_id in kept:
        if chunk_id in found:
            _, file_id, filename, content, attributes, store_id = found[chunk_id]
            score = round(scores[chunk_id], 6)
            hits.append(Hit(chunk_id, file_id, filename, score, content, attributes, store_id))
    return hits
