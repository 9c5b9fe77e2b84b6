"""Retrieval quality on a small labelled corpus (``data/retrieval_corpus.json``).

Every passage is uploaded as a file of its own into a real vector store through the API (so
the worker's real parsing, chunking and embedding ingest it); then every question is searched
with the real search code in three modes, straight against the session database: hybrid
(vector + full text by RRF, what the API and file_search use), vector only and keyword only.
Recall@5 is the share of questions whose labelled passage is among the top five hits (recall@1
is printed and compared too: fusion shows most in the first hit).

The corpus mixes questions that share rare identifiers with their passage (error codes,
setting names, part numbers, proper names, among near-duplicate passages: keyword search
helps) and paraphrased questions (few shared words: semantic search helps), so the fusion
must do at least as well as either arm alone.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from assistd.core.config import Settings
from assistd.core.db import async_url, create_engine, dispose, make_sessionmaker, transaction
from assistd.llm.embeddings import make_embedder
from assistd.models import VectorStore
from assistd.vector_stores import search
from tests.conftest import Database, mint_key, start_server, stop_server
from tests.support.runs import bounded

DATA = Path(__file__).parent / "data" / "retrieval_corpus.json"
K = 5
MODES: tuple[search.Mode, ...] = ("hybrid", "vector", "keyword")
HYBRID_FLOOR = 0.8


async def _rankings(
    database_url: str, store_id: str, questions: list[str], model: str
) -> dict[str, list[list[str]]]:
    """Per mode, the file ids of the top ``K`` hits of every question."""
    engine = create_engine(async_url(database_url), Settings())
    embedder = make_embedder(model)
    out: dict[str, list[list[str]]] = {}
    try:
        maker = make_sessionmaker(engine)
        for mode in MODES:
            out[mode] = []
            for question in questions:
                async with transaction(maker) as session:
                    store = await session.get_one(VectorStore, store_id)
                    assert store.embedding_model == model, store.embedding_model
                    hits = await search.search(
                        session,
                        embedder,
                        [store.id],
                        store.dimension,
                        [question],
                        max_results=K,
                        mode=mode,
                    )
                out[mode].append([h.file_id for h in hits])
    finally:
        await dispose(engine)
    return out


def test_hybrid_recall_at_5_beats_each_arm(
    client: OpenAI, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default local model (WordLlama's static embeddings)."""
    model = Settings().embeddings.model
    assert model == "local:wordllama"
    _check_quality(client, database.url, model, capsys)


def test_hybrid_recall_with_the_transformer_model(
    pg_root: str, server_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The slower, semantically stronger local model (all-MiniLM-L6-v2 on onnxruntime)."""
    url = Database(pg_root).new_database(f"minilm_{uuid.uuid4().hex[:10]}")
    env = {
        **server_env,
        "ASSISTD_DATABASE_URL": url,
        "ASSISTD_EMBEDDINGS__MODEL": "local:all-MiniLM-L6-v2",
    }
    server = start_server(env, tmp_path / "server.log")
    try:
        key = mint_key(url, "minilm")
        with OpenAI(base_url=server.api, api_key=key, max_retries=0) as sdk:
            _check_quality(sdk, url, "local:all-MiniLM-L6-v2", capsys)
    finally:
        stop_server(server)


def _check_quality(
    client: OpenAI, database_url: str, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus: dict[str, Any] = json.loads(DATA.read_text())
    passages: list[dict[str, str]] = corpus["passages"]
    questions: list[dict[str, str]] = corpus["questions"]
    assert {q["answer"] for q in questions} <= {p["id"] for p in passages}

    store = client.vector_stores.create(name="retrieval-quality")
    started = time.monotonic()
    batch = bounded(
        lambda: client.vector_stores.file_batches.upload_and_poll(
            store.id,
            files=[(f"{p['id']}.txt", io.BytesIO(p["text"].encode())) for p in passages],
            poll_interval_ms=50,
        ),
        timeout=180,
    )
    assert batch.file_counts.completed == len(passages), batch.file_counts
    print(f"ingested {len(passages)} passages in {time.monotonic() - started:.1f}s")
    passage_of = {
        f.id: f.filename.removesuffix(".txt") for f in client.files.list(purpose="assistants")
    }
    assert len(passage_of) == len(passages)

    assert client.vector_stores.retrieve(store.id).status == "completed"
    rankings = asyncio.run(_rankings(database_url, store.id, [q["q"] for q in questions], model))

    recall: dict[str, float] = {}
    at_one: dict[str, float] = {}
    by_kind: dict[str, dict[str, list[bool]]] = {m: defaultdict(list) for m in MODES}
    misses: dict[str, list[str]] = {m: [] for m in MODES}
    for mode in MODES:
        found, first = [], []
        for question, top in zip(questions, rankings[mode], strict=True):
            ranked = [passage_of[f] for f in top]
            hit = question["answer"] in ranked
            found.append(hit)
            first.append(ranked[:1] == [question["answer"]])
            by_kind[mode][question["kind"]].append(hit)
            if not hit:
                misses[mode].append(question["q"])
        recall[mode] = sum(found) / len(found)
        at_one[mode] = sum(first) / len(first)
    # Shown in the test run's output (CI logs), not only on failure.
    with capsys.disabled():
        print(f"\nembedding model {model}")
        for mode in MODES:
            kinds = ", ".join(
                f"{kind} {sum(hits)}/{len(hits)}" for kind, hits in sorted(by_kind[mode].items())
            )
            print(
                f"recall@{K} {mode:8s} {recall[mode]:.3f}  ({kinds}; recall@1 {at_one[mode]:.3f})"
            )
        for mode in ("hybrid", "vector"):
            for question_text in misses[mode]:
                print(f"  {mode} missed: {question_text}")

    assert recall["hybrid"] >= max(recall["vector"], recall["keyword"]), recall
    # Fusion matters most for the first hit (identifiers among near-duplicates).
    assert at_one["hybrid"] >= max(at_one["vector"], at_one["keyword"]), at_one
    assert recall["hybrid"] >= HYBRID_FLOOR, recall
    # Both arms work on their own (a dead arm would leave hybrid equal to the other one).
    assert recall["vector"] > 0.5, recall
    assert recall["keyword"] > 0, recall
