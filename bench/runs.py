"""Run benchmark: streamed runs beside direct backend calls, and a burst of concurrent runs.

    python bench/runs.py [--pairs 40] [--runs 500] [--workers 0] [--profile DIR]

Starts its own embedded Postgres (in a temporary directory, deleted at exit), migrates it,
mints an API key, starts the scripted OpenAI-compatible backend
(``tests/support/scripted_chat.py``) and ``assistd serve`` (pointed at it through
``OPENAI_BASE_URL``) as subprocesses, then measures, in the same run:

1. **Streamed run vs direct call.** A backend answer of 20 words, 10 ms apart (~200 ms).
   ``POST /v1/threads/{id}/runs`` with ``stream: true`` on a pre-created thread (one fresh
   thread per run, so every prompt is the same), read until ``event: done``, against a streamed
   ``POST /v1/chat/completions`` sent straight to the backend with the same script, read until
   ``data: [DONE]``. The two alternate (ABBA order), ``--pairs`` of each after a warm-up.
   Reports p50 wall time of each and the ratio (target <= 1.05).
2. **Time to first token.** Per pair, (request sent -> first ``thread.message.delta`` frame)
   minus (request sent -> first content delta of the direct call): p50 (the target,
   <= 10 ms) and p95.
3. **Burst.** After a warm-up (``--burst-warmup`` runs created at once and completed, not
   measured: modules imported, database and backend connections open in every server
   process, as on a server that has been up a while), ``--runs`` threads are created (not
   timed); then as many
   ``POST /v1/threads/{id}/runs`` (not streamed, one connection each, opened beforehand) are
   written at once against a backend answering in ~1 s (10 words, 100 ms apart). Completion
   is observed in the database (``SELECT count(*) FROM runs WHERE status='completed'`` on a
   separate connection every 20 ms), so client polling does not load the server. Reports how
   long the POSTs took and when all runs were completed (target <= 2.5 s).

Besides the table with PASS/FAIL per target it prints where the time went, from the
timestamps assistd writes on every stream event of a streamed run (``run_events.created_at``,
stamped in the transaction that writes it; the burst's runs are not streamed and record none):
API, queue wait and claim, first token, delivery to the client, how many transactions wrote
each run's events, the commits and database connections of the burst, and the CPU
each process used (per run, too, which contention barely changes). An assistd stream that ends
before the run's last delta or ``thread.run.completed`` is reported as a bug and left out of
the timings.

The load generator is a minimal HTTP/1.1 client on raw asyncio streams (as in
``bench/crud.py``). By default everything runs on two CPUs (``--cpus``): the benchmark
restricts itself before starting anything, and the servers and Postgres inherit that. Other
jobs on the machine still compete for those CPUs: the CPU they used while measuring is
printed ("other"), with a warning when it is over a quarter of a core.

``--profile DIR`` also samples every assistd process with ``py-spy record`` during each
measured phase (collapsed stacks in DIR, loadable in speedscope.app) and prints where the
samples went. ``--samples FILE`` writes every measured streamed call as a JSON line.
By default ``assistd serve`` runs one server process per CPU it may use (``--processes``, as
a production deployment would; ``--processes 1`` for a single one), each with its own listening
socket and in-process worker.
``--workers N`` serves with ``--no-worker`` and runs N ``assistd worker`` processes (mind the
embedded Postgres's ``max_connections = 100``: lower ``ASSISTD_DB_POOL_SIZE`` for N >= 2).
``--pg-set NAME=VALUE`` sets a Postgres parameter for the benchmark database (e.g.
``synchronous_commit=off``). The servers inherit this script's environment, so assistd
settings can be tried without editing anything, e.g.
``ASSISTD_WORKER__POLL_SECONDS=0.1 ASSISTD_DB_POOL_SIZE=40 python bench/runs.py``.

Every process and the temporary directory are cleaned up at exit, including on Ctrl-C and
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _stack import (
    Cleanup,
    Process,
    RawConnection,
    child_pids,
    free_port,
    load_average,
    log,
    machine_busy_s,
    mint_key,
    percentile,
    postmaster_pid,
    process_cpu_s,
    raw_request,
    run_main,
    server_env,
    spawn,
    start_embedded_postgres,
    start_server,
    tree_cpu_s,
    use_uvloop,
)
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SCRIPTED_CHAT = ROOT / "tests" / "support" / "scripted_chat.py"

TARGET_RATIO = 1.05
TARGET_TTFT_MS = 10.0
TARGET_BURST_S = 2.5

MODEL = "gpt-4o"
INSTRUCTIONS = "You are a helpful assistant."
STREAM_WORDS, STREAM_DELAY_MS = 20, 10  # ~200 ms answers
BURST_WORDS, BURST_DELAY_MS = 10, 100  # ~1 s answers
POLL_S = 0.02
BURST_TIMEOUT_S = 60.0
GAP_S = 0.05
"""Pause between two measured calls, so each starts from an idle server."""


def script(words: int, delay_ms: int) -> tuple[str, str]:
    """The user message scripting the backend, and the reply it streams."""
    reply = " ".join(f"w{i}" for i in range(words))
    return "#script " + json.dumps({"reply": reply, "delay_ms": delay_ms}), reply


# ---- the stack -----------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything started for the benchmark."""

    tmp: Path
    url: str
    key: str
    port: int
    backend_port: int
    api: Process
    workers: list[Process]
    backend: Process
    pg_pid: int | None
    assistant_id: str = ""

    @property
    def assistd_pids(self) -> list[int]:
        # serve --processes N: uvicorn's supervisor and the server processes it spawned.
        return [self.api.pid, *child_pids(self.api.pid), *(w.pid for w in self.workers)]

    def headers(self) -> dict[str, str]:
        return {
            "Host": f"127.0.0.1:{self.port}",
            "Authorization": f"Bearer {self.key}",
            "OpenAI-Beta": "assistants=v2",
            "User-Agent": "assistd-bench",
        }

    def check_alive(self) -> None:
        for proc in (self.api, self.backend, *self.workers):
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.what} exited:\n{proc.output()[-3000:]}")


def apply_pg_settings(url: str, settings: list[str]) -> None:
    """Each ``NAME=VALUE`` for the benchmark database (``ALTER DATABASE … SET``; sessions
    opened later see it), or server-wide (``ALTER SYSTEM`` + reload) for a parameter that
    cannot be set per database."""
    with psycopg.connect(url, autocommit=True) as conn:
        for item in settings:
            name, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[a-z_.]+", name):
                raise SystemExit(f"--pg-set wants NAME=VALUE, got {item!r}")
            ident = sql.Identifier(*name.split("."))
            try:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(conn.info.dbname), ident, sql.Literal(value)
                    )
                )
            except psycopg.errors.CantChangeRuntimeParam:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(ident, sql.Literal(value)))
                conn.execute("SELECT pg_reload_conf()")
            log(f"Postgres: {name} = {value}")


def start_stack(args: argparse.Namespace, tmp: Path, cleanup: Cleanup) -> Stack:
    from assistd.core.db import async_url
    from assistd.core.migrate import upgrade_to_head

    log(f"starting embedded Postgres in {tmp}")
    url = start_embedded_postgres(tmp, cleanup)
    log("migrating")
    upgrade_to_head(async_url(url))
    if args.pg_set:
        apply_pg_settings(url, args.pg_set)
    _, key = mint_key(url, f"bench-{uuid.uuid4().hex[:12]}")
    logs = tmp if not args.keep_log else Path(tempfile.mkdtemp(prefix="assistd-bench-logs-"))
    if args.keep_log:
        log(f"logs kept in {logs}")
        kept = logs

        def keep_pg_log() -> None:
            if (tmp / "pgdata" / "log").exists():
                shutil.copyfile(tmp / "pgdata" / "log", kept / "postgres.log")

        cleanup.push("copying the Postgres log", keep_pg_log)

    backend_port = free_port()
    log("starting the scripted backend")
    backend = spawn(
        "scripted backend",
        [sys.executable, str(SCRIPTED_CHAT), "--port", str(backend_port)],
        os.environ,
        logs / "backend.log",
        cleanup,
        health_url=f"http://127.0.0.1:{backend_port}/health",
    )
    data_dir = tmp / "serverdata"
    data_dir.mkdir()
    backend_env: dict[str, str | None] = {
        "OPENAI_BASE_URL": f"http://127.0.0.1:{backend_port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "AZURE_OPENAI_ENDPOINT": None,
        "ASSISTD_MODELS__MODELS_FILE": None,
    }
    log(
        "starting assistd serve"
        + (" --no-worker" if args.workers else "")
        + (f" --processes {args.processes}" if args.processes > 1 else "")
    )
    server = start_server(
        url,
        data_dir,
        logs / "server.log",
        cleanup,
        extra_env=backend_env,
        args=(["--no-worker"] if args.workers else [])
        + (["--processes", str(args.processes)] if args.processes > 1 else []),
    )
    api = Process("assistd server", server.process, server.log_path)
    if args.workers:
        from assistd.core.config import Settings

        cfg = Settings()
        # serve: read, write (+ overflow) and direct pools + LISTEN; each worker: write
        # (+ overflow) and direct pools + LISTEN.
        need = 3 * cfg.db_pool_size + cfg.db_max_overflow + 1
        need += args.workers * (2 * cfg.db_pool_size + cfg.db_max_overflow + 1)
        if need > 95:
            log(
                f"WARNING: serve + {args.workers} workers may open {need} database connections, "
                "more than the embedded Postgres's max_connections = 100 allows; lower "
                "ASSISTD_DB_POOL_SIZE / ASSISTD_DB_MAX_OVERFLOW (runs fail on 'too many clients')"
            )
    workers: list[Process] = []
    for i in range(args.workers):
        log(f"starting assistd worker {i + 1}/{args.workers}")
        workers.append(
            spawn(
                f"assistd worker {i + 1}",
                [sys.executable, "-m", "assistd", "worker"],
                server_env(url, data_dir, backend_env),
                logs / f"worker{i + 1}.log",
                cleanup,
            )
        )
    for w in workers:
        # It prints "worker started" once migrated; give it 10 s to say so, then go on if alive.
        deadline = time.monotonic() + 10
        while "worker started" not in w.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        if w.process.poll() is not None:
            raise RuntimeError(f"{w.what} exited:\n{w.output()}")
    if workers:
        time.sleep(2)  # the tokenizer loads before the first claim
    stack = Stack(
        tmp=tmp,
        url=url,
        key=key,
        port=server.port,
        backend_port=backend_port,
        api=api,
        workers=workers,
        backend=backend,
        pg_pid=postmaster_pid(tmp),
    )
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=server.base_url + "/v1", headers=headers, timeout=30) as c:
        r = c.post(
            "/assistants", json={"model": MODEL, "name": "Bench", "instructions": INSTRUCTIONS}
        )
        r.raise_for_status()
        stack.assistant_id = r.json()["id"]
    return stack


async def open_connections(port: int, n: int) -> list[RawConnection]:
    gate = asyncio.Semaphore(64)

    async def one() -> RawConnection:
        async with gate:
            return await RawConnection.open("127.0.0.1", port)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def create_threads(stack: Stack, n: int, content: str, clients: int = 16) -> list[str]:
    """``n`` threads, each with one user message ``content``."""
    body = json.dumps({"messages": [{"role": "user", "content": content}]}).encode()
    raw = raw_request("POST", "/v1/threads", stack.headers(), body)
    conns = await open_connections(stack.port, min(clients, n))
    ids: list[str] = []
    remaining = n

    async def client(conn: RawConnection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status, data = await conn.request(raw)
            if status != 200:
                raise RuntimeError(f"creating a thread: {status} {data[:300]!r}")
            ids.append(json.loads(data)["id"])

    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    return ids


# ---- SSE -----------------------------------------------------------------------------------


class SseParser:
    """Incremental ``text/event-stream`` parser: (event, data) per frame, comments skipped."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, piece: bytes) -> list[tuple[str, str]]:
        self.buf += piece
        out: list[tuple[str, str]] = []
        while (end := self.buf.find(b"\n\n")) >= 0:
            frame, self.buf = self.buf[:end], self.buf[end + 2 :]
            event, data = "message", []
            for line in frame.split(b"\n"):
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" ").decode())
            if data:
                out.append((event, "\n".join(data)))
        return out


@dataclass
class Sample:
    """One streamed call."""

    sent_wall: float
    """``time.time()`` when the request was written (to compare with server stamps)."""
    ttft_ms: float
    total_ms: float
    text: str
    run_id: str = ""
    ended: str = ""
    """The run's last status event seen in the stream (assistd only)."""


async def timed_stream(
    conn: RawConnection,
    raw: bytes,
    on_frame: Callable[[str, str], tuple[str | None, bool]],
) -> Sample:
    """Send ``raw``; time the first frame for which ``on_frame`` returns text and the frame for
    which it says done. ``on_frame(event, data) -> (text or None, done)``."""
    sent_wall = time.time()
    t0 = time.perf_counter()
    status, body = await conn.stream(raw)
    parser = SseParser()
    first: float | None = None
    done: float | None = None
    text: list[str] = []
    frames: list[tuple[str, str]] = []
    async for piece in body:
        now = time.perf_counter()
        for event, data in parser.feed(piece):
            frames.append((event, data))
            got, finished = on_frame(event, data)
            if got is not None:
                text.append(got)
                if first is None and got:
                    first = now
            if finished and done is None:
                done = now
    if status != 200 or first is None or done is None:
        raise RuntimeError(f"unexpected stream ({status}): {frames[-3:]!r}")
    return Sample(sent_wall, (first - t0) * 1e3, (done - t0) * 1e3, "".join(text))


async def assistd_call(conn: RawConnection, stack: Stack, thread_id: str) -> Sample:
    body = json.dumps({"assistant_id": stack.assistant_id, "stream": True}).encode()
    headers = {**stack.headers(), "Accept": "text/event-stream"}
    raw = raw_request("POST", f"/v1/threads/{thread_id}/runs", headers, body)
    run_id = ended = ""

    def on_frame(event: str, data: str) -> tuple[str | None, bool]:
        nonlocal run_id, ended
        if event == "thread.message.delta":
            parts = json.loads(data)["delta"]["content"]
            return "".join(p.get("text", {}).get("value", "") for p in parts), False
        if event == "thread.run.created":
            run_id = json.loads(data)["id"]
        elif event in ("thread.run.failed", "thread.run.expired", "thread.run.incomplete"):
            raise RuntimeError(f"run ended {event}: {data[:500]}")
        elif event == "thread.run.completed":
            ended = event
        return None, event == "done"

    sample = await timed_stream(conn, raw, on_frame)
    sample.run_id, sample.ended = run_id, ended
    return sample


async def direct_call(conn: RawConnection, stack: Stack, content: str) -> Sample:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": content},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    headers = {
        "Host": f"127.0.0.1:{stack.backend_port}",
        "Authorization": "Bearer sk-bench",
        "Accept": "text/event-stream",
        "User-Agent": "assistd-bench",
    }
    raw = raw_request("POST", "/v1/chat/completions", headers, body)

    def on_frame(event: str, data: str) -> tuple[str | None, bool]:
        if data == "[DONE]":
            return None, True
        choices = json.loads(data).get("choices") or []
        if choices:
            return choices[0].get("delta", {}).get("content") or "", False
        return None, False

    return await timed_stream(conn, raw, on_frame)


# ---- profiling -----------------------------------------------------------------------------


class Profiler:
    """``py-spy record`` on every assistd process for the duration of a ``with`` block."""

    def __init__(self, out_dir: Path | None, pids: list[int], cleanup: Cleanup) -> None:
        self.out_dir = out_dir
        self.pids = pids
        self.cleanup = cleanup
        self.files: dict[str, list[Path]] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.out_dir is None:
            yield
            return
        procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        for i, pid in enumerate(self.pids):
            out = self.out_dir / f"{name}-{'api' if i == 0 else f'worker{i}'}.txt"
            with open(out.with_suffix(".log"), "wb") as sink:
                proc = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
                    + ["--format", "raw", "--output", str(out)],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append((proc, out))
            self.cleanup.push(f"py-spy {name}", functools.partial(_stop, proc))
        time.sleep(0.5)  # let py-spy attach
        try:
            yield
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            for proc, out in procs:
                _stop(proc, grace=30)
                if not out.exists():
                    err = out.with_suffix(".log").read_text(errors="replace")
                    log(f"py-spy wrote no profile for {out.name}: {err[-500:]}")
            self.files[name] = [out for _, out in procs if out.exists()]


def _stop(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
LIBRARIES = {
    "sqlalchemy": "sqlalchemy/",
    "psycopg": "psycopg/",
    "openai SDK + its httpx": "openai/",
    "pydantic": "pydantic",
    "uvicorn + starlette + fastapi": ("uvicorn/", "starlette/", "fastapi/"),
    "tiktoken": "tiktoken",
    "json": "json/",
}


def _frame_name(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('fn')} ({path})"


def summarize_profile(paths: list[Path], top: int = 18) -> list[str]:
    """Where the samples of py-spy's collapsed stacks went: assistd's own functions
    (inclusive), libraries (inclusive) and the hottest frames (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    libs: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_frame_name(f) for f in stack.split(";")]
            own[frames[-1]] += n
            # Only what runs under the event loop (not the CLI and uvicorn frames above it).
            loop = [i for i, f in enumerate(frames) if f.startswith("Runner.run ")]
            below = frames[loop[0] + 1 :] if loop else frames
            for name in set(below):
                if "(assistd/" in name:
                    inclusive[name] += n
            for lib, marks in LIBRARIES.items():
                pats = (marks,) if isinstance(marks, str) else marks
                if any(p in f for f in below for p in pats):
                    libs[lib] += n
    if not total:
        return ["  (no samples)"]
    lines = [
        f"  {total} samples at 200 Hz of threads not idle (includes waiting for a CPU); "
        "frames past an await of SQLAlchemy's greenlet bridge lose their callers",
        "  assistd functions, inclusive:",
    ]
    lines += [f"    {100 * n / total:5.1f}%  {k}" for k, n in inclusive.most_common(top)]
    lines.append(
        "  libraries, inclusive: "
        + ", ".join(f"{k} {100 * n / total:.0f}%" for k, n in libs.most_common())
    )
    lines.append("  hottest frames, self:")
    lines += [f"    {100 * n / total:5.1f}%  {k}" for k, n in own.most_common(10)]
    return lines


# ---- phase 1 + 2: streamed runs beside direct calls ----------------------------------------


@dataclass
class StreamResult:
    assistd: list[Sample] = field(default_factory=list)
    direct: list[Sample] = field(default_factory=list)
    breakdown: dict[str, list[float]] = field(default_factory=dict)
    tx_per_run: list[int] = field(default_factory=list)
    events_per_run: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cut_short: list[str] = field(default_factory=list)
    """Streams that ended before the run's last events (left out of the timings)."""


async def stream_phase(args: argparse.Namespace, stack: Stack, profiler: Profiler) -> StreamResult:
    content, reply = script(STREAM_WORDS, STREAM_DELAY_MS)
    n = args.warmup + args.pairs
    log(f"creating {n} threads for the streamed runs")
    threads = await create_threads(stack, n, content)
    a_conn = await RawConnection.open("127.0.0.1", stack.port)
    d_conn = await RawConnection.open("127.0.0.1", stack.backend_port)
    result = StreamResult()
    try:
        log(f"streamed runs vs direct calls: {args.warmup} warm-up + {args.pairs} pairs")
        cpu0 = cpu_snapshot(stack)
        t0 = time.perf_counter()
        with profiler.phase("stream"):
            for i in range(n):
                if i == args.warmup:
                    cpu0, t0 = cpu_snapshot(stack), time.perf_counter()
                pair: dict[str, Sample] = {}
                complete = True
                for kind in ("assistd", "direct") if i % 2 == 0 else ("direct", "assistd"):
                    if kind == "assistd":
                        pair[kind] = await assistd_call(a_conn, stack, threads[i])
                    else:
                        pair[kind] = await direct_call(d_conn, stack, content)
                    got = pair[kind]
                    if kind == "assistd" and (
                        got.text != reply or got.ended != "thread.run.completed"
                    ):
                        # A stream that ends early is a bug to report, not a timing.
                        complete = False
                        missing = reply[len(got.text) :] if reply.startswith(got.text) else "?"
                        result.cut_short.append(
                            f"{got.run_id}: missing {missing!r}"
                            + ("" if got.ended else " and thread.run.completed")
                        )
                    elif got.text != reply:
                        raise RuntimeError(f"{kind}: streamed {got.text!r}, not {reply!r}")
                    await asyncio.sleep(GAP_S)
                if i >= args.warmup and complete:
                    result.assistd.append(pair["assistd"])
                    result.direct.append(pair["direct"])
        result.wall_s = time.perf_counter() - t0
        result.cpu = cpu_delta(stack, cpu0)
    finally:
        await a_conn.close()
        await d_conn.close()
    if args.samples is not None:
        lines = [
            json.dumps({"kind": kind, **dataclasses.asdict(s)})
            for kind, samples in (("assistd", result.assistd), ("direct", result.direct))
            for s in samples
        ]
        args.samples.write_text("\n".join(lines) + "\n")
    await stream_breakdown(stack, result)
    return result


EVENT_STAMPS = """
SELECT r.id,
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.created'),
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.in_progress'),
       min(e.created_at) FILTER (WHERE e.event = 'thread.message.delta'),
       max(e.created_at) FILTER (WHERE e.event = 'thread.message.delta'),
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.completed'),
       count(*),
       count(DISTINCT e.created_at)
FROM runs r JOIN run_events e ON e.run_id = r.id
WHERE r.id = ANY(%s)
GROUP BY r.id
"""
"""Per run: the server's stamps (``time.time()`` in the transaction writing the event) of
created, claimed, first and last delta, completed; events; distinct stamps (= transactions
that appended events, as each append stamps its batch once)."""


async def event_stamps(url: str, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await (await conn.execute(EVENT_STAMPS, [run_ids])).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


async def stream_breakdown(stack: Stack, result: StreamResult) -> None:
    stamps = await event_stamps(stack.url, [s.run_id for s in result.assistd])
    parts: dict[str, list[float]] = {
        "request sent -> run.created written (API)": [],
        "run.created -> run.in_progress written (queue wake + claim)": [],
        "run.in_progress -> first delta written (load, backend TTFT, sink)": [],
        "first delta written -> first delta at client (commit, NOTIFY, tail, SSE)": [],
        "first -> last delta written (backend streams ~190 ms)": [],
        "run.completed written -> done at client (commit, NOTIFY, tail, SSE)": [],
    }
    slots = list(parts.values())
    for s in result.assistd:
        row = stamps.get(s.run_id)
        if row is None or None in row[:5]:
            continue
        created, claimed, first, last, completed, events, txs = row
        first_client = s.sent_wall + s.ttft_ms / 1e3
        done_client = s.sent_wall + s.total_ms / 1e3
        points = [s.sent_wall, created, claimed, first, first_client]
        for k in range(4):
            slots[k].append((points[k + 1] - points[k]) * 1e3)
        slots[4].append((last - first) * 1e3)
        slots[5].append((done_client - completed) * 1e3)
        result.events_per_run.append(int(events))
        result.tx_per_run.append(int(txs))
    result.breakdown = parts


# ---- phase 3: a burst of concurrent runs ---------------------------------------------------


@dataclass
class BurstResult:
    n: int
    posts_s: float = 0.0
    post_p50_ms: float = 0.0
    first_done_s: float | None = None
    half_done_s: float | None = None
    all_done_s: float | None = None
    completed: int = 0
    failed: int = 0
    error: str = ""
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds, queued, in progress, completed) per poll."""
    stamps: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    fired_wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    commits: int | None = None
    sessions: int | None = None
    """Database connections opened while measuring (pool overflow churn)."""


STATUS_COUNTS = """
SELECT count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'expired', 'incomplete')),
       count(*) FILTER (WHERE status = 'queued'),
       count(*) FILTER (WHERE status = 'in_progress')
FROM runs
"""


OURS = ("assistd", "postgres", "backend", "bench")


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each of our processes and of the whole machine."""
    snap = {
        "assistd": sum(process_cpu_s(p) or 0.0 for p in stack.assistd_pids),
        "backend": process_cpu_s(stack.backend.pid) or 0.0,
        "bench": time.process_time(),
        "machine": machine_busy_s(),
        "wall": time.perf_counter(),
    }
    if stack.pg_pid is not None:
        snap["postgres"] = tree_cpu_s(stack.pg_pid) or 0.0
    if stack.workers:
        snap["api"] = process_cpu_s(stack.api.pid) or 0.0
        snap["workers"] = sum(process_cpu_s(w.pid) or 0.0 for w in stack.workers)
    return snap


def cpu_delta(stack: Stack, before: dict[str, float]) -> dict[str, float]:
    """CPU seconds used since ``before`` (``other``: the rest of the machine), and ``wall``."""
    after = cpu_snapshot(stack)
    out = {k: after[k] - before[k] for k in before if k in after}
    out["other"] = max(0.0, out.pop("machine") - sum(out.get(k, 0.0) for k in OURS))
    out["load"] = load_average()
    return out


async def db_counters(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
    """(transactions committed, sessions opened) in the database so far."""
    row = await (
        await conn.execute(
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
        )
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def warm_up_burst(stack: Stack, n: int, content: str) -> None:
    """``n`` runs created at once on fresh connections (so every server process takes some)
    and waited for: what a server that has been up for a while has done (modules imported,
    database and backend connections open) is not measured as part of the burst."""
    threads = await create_threads(stack, n, content)
    body = json.dumps({"assistant_id": stack.assistant_id}).encode()
    conns = await open_connections(stack.port, n)
    try:
        for conn, thread in zip(conns, threads, strict=True):
            conn.send(
                raw_request(
                    "POST", f"/v1/threads/{thread}/runs", {**stack.headers(), "Accept": "*/*"}, body
                )
            )
        for conn in conns:
            status, data = await conn.response()
            if status != 200:
                raise RuntimeError(f"warm-up run: {status} {data[:300]!r}")
    finally:
        for conn in conns:
            await conn.close()
    async with await psycopg.AsyncConnection.connect(stack.url, autocommit=True) as db:
        deadline = time.monotonic() + BURST_TIMEOUT_S
        while True:
            row = await (
                await db.execute(
                    "SELECT count(*) FROM runs WHERE thread_id = ANY(%s) AND status <> 'completed'",
                    [threads],
                )
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("warm-up runs did not complete")
            await asyncio.sleep(0.05)


async def burst_phase(args: argparse.Namespace, stack: Stack, profiler: Profiler) -> BurstResult:
    n = args.runs
    content, _ = script(BURST_WORDS, BURST_DELAY_MS)
    if args.burst_warmup:
        log(f"warm-up: {args.burst_warmup} runs at once, not measured")
        await warm_up_burst(stack, args.burst_warmup, content)
    log(f"creating {n} threads for the burst")
    threads = await create_threads(stack, n, content)
    body = json.dumps({"assistant_id": stack.assistant_id}).encode()
    raws = [
        raw_request("POST", f"/v1/threads/{t}/runs", {**stack.headers(), "Accept": "*/*"}, body)
        for t in threads
    ]
    result = BurstResult(n)
    db = await psycopg.AsyncConnection.connect(stack.url, autocommit=True)
    conns = await open_connections(stack.port, n)
    try:
        row = await (await db.execute(STATUS_COUNTS)).fetchone()
        assert row is not None
        base_done, base_failed = int(row[0]), int(row[1])
        await asyncio.sleep(0.5)  # settle after creating the threads
        commits0, sessions0 = await db_counters(db)
        log(f"burst: {n} concurrent run creations, ~1 s backend")
        with profiler.phase("burst"):
            cpu0 = cpu_snapshot(stack)
            result.fired_wall = time.time()
            t0 = time.perf_counter()
            for conn, raw in zip(conns, raws, strict=True):
                conn.send(raw)
            post_times: list[float] = []

            async def answer(conn: RawConnection) -> None:
                status, data = await conn.response()
                post_times.append(time.perf_counter() - t0)
                if status != 200 or json.loads(data).get("status") != "queued":
                    raise RuntimeError(f"creating a run: {status} {data[:300]!r}")

            posts = asyncio.gather(*(answer(c) for c in conns))
            while True:
                row = await (await db.execute(STATUS_COUNTS)).fetchone()
                assert row is not None
                t = time.perf_counter() - t0
                done, failed = int(row[0]) - base_done, int(row[1]) - base_failed
                result.timeline.append((t, int(row[2]), int(row[3]), done))
                if done and result.first_done_s is None:
                    result.first_done_s = t
                if done * 2 >= n and result.half_done_s is None:
                    result.half_done_s = t
                if done >= n:
                    result.all_done_s = t
                    break
                if failed:
                    result.failed = failed
                    result.error = await first_failure(db)
                    break
                if t > BURST_TIMEOUT_S:
                    result.error = f"only {done} of {n} runs completed after {t:.0f} s"
                    break
                if posts.done() and posts.exception() is not None:
                    break
                await asyncio.sleep(POLL_S)
            result.completed = done
            await posts
            result.wall_s = time.perf_counter() - t0
            result.cpu = cpu_delta(stack, cpu0)
        result.posts_s = max(post_times)
        result.post_p50_ms = percentile(post_times, 0.5) * 1e3
        await asyncio.sleep(1.1)  # backends report their statistics about once a second
        commits1, sessions1 = await db_counters(db)
        result.commits = commits1 - commits0 - 2  # our own two reads
        result.sessions = sessions1 - sessions0
        ids = [
            r[0]
            for r in await (
                await db.execute("SELECT id FROM runs WHERE thread_id = ANY(%s)", [threads])
            ).fetchall()
        ]
        result.stamps = await event_stamps(stack.url, ids)
    finally:
        for c in conns:
            await c.close()
        await db.close()
    return result


async def first_failure(db: psycopg.AsyncConnection[Any]) -> str:
    row = await (
        await db.execute(
            "SELECT id, status, last_error FROM runs "
            "WHERE status IN ('failed', 'cancelled', 'expired', 'incomplete') LIMIT 1"
        )
    ).fetchone()
    return f"run {row[0]} ended {row[1]}: {row[2]}" if row else "a run failed"


# ---- report --------------------------------------------------------------------------------


def ms(values: Sequence[float], p: float = 0.5) -> str:
    return f"{percentile(list(values), p):.1f}" if values else "-"


def cpu_line(cpu: dict[str, float], per: int = 0, what: str = "run") -> list[str]:
    """CPU use as a share of one core (and per ``what`` when ``per`` is given)."""
    if not cpu:
        return []
    wall = cpu["wall"]
    shares = ", ".join(f"{k} {100 * cpu[k] / wall:.0f}%" for k in (*OURS, "other") if k in cpu)
    if "api" in cpu:
        shares += (
            f"; assistd = api {100 * cpu['api'] / wall:.0f}% + workers "
            f"{100 * cpu['workers'] / wall:.0f}%"
        )
    lines = [f"  CPU, % of one core: {shares} (other = the rest of this machine)"]
    if per:
        costs = ", ".join(
            f"{k} {1e3 * cpu[k] / per:.1f}" for k in (*OURS[:3], "api", "workers") if k in cpu
        )
        lines.append(f"  CPU ms per {what}: {costs}")
    cores = len(os.sched_getaffinity(0))
    if cpu["other"] / wall > 0.25:
        lines.append(
            f"  WARNING: other processes kept {100 * cpu['other'] / wall:.0f}% of a core busy "
            f"(1-min load average {cpu['load']:.1f} on {os.cpu_count()} CPUs, we use "
            f"{cores}); latencies include waiting for a CPU"
        )
    return lines


def source_revision() -> str:
    """The checkout's commit, and whether ``src/`` has uncommitted changes (what was measured)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "revision unknown"
    return f"{head}{' + uncommitted src/ changes' if dirty else ''}"


def report(
    args: argparse.Namespace,
    stack: Stack,
    stream: StreamResult | None,
    burst: BurstResult | None,
    profiler: Profiler,
) -> bool:
    rows: list[tuple[str, str, str, bool]] = []
    workers = (
        f"{args.workers} worker processes"
        if args.workers
        else f"{args.processes} server process{'es' if args.processes > 1 else ''}, "
        "each with its in-process worker"
    )
    print(
        f"assistd runs benchmark ({source_revision()}): {len(os.sched_getaffinity(0))} CPUs "
        f"shared by assistd ({workers}), Postgres, the scripted backend and this client"
    )
    if stream is not None:
        a_total = [s.total_ms for s in stream.assistd]
        d_total = [s.total_ms for s in stream.direct]
        a_ttft = [s.ttft_ms for s in stream.assistd]
        d_ttft = [s.ttft_ms for s in stream.direct]
        diff = [a.ttft_ms - d.ttft_ms for a, d in zip(stream.assistd, stream.direct, strict=True)]
        ratio = percentile(a_total, 0.5) / percentile(d_total, 0.5)
        print()
        print(
            f"1+2. streamed run vs direct streamed call ({STREAM_WORDS} words, "
            f"{STREAM_DELAY_MS} ms apart), {len(a_total)} pairs, interleaved"
        )
        print(f"  {'':<30}{'p50 ms':>9}{'p95 ms':>9}{'min ms':>9}{'max ms':>9}")
        for label, values in (
            ("assistd wall (sent -> done)", a_total),
            ("direct wall  (sent -> [DONE])", d_total),
            ("assistd TTFT", a_ttft),
            ("direct TTFT", d_ttft),
            ("TTFT difference (per pair)", diff),
        ):
            print(
                f"  {label:<30}{ms(values):>9}{ms(values, 0.95):>9}"
                f"{min(values):>9.1f}{max(values):>9.1f}"
            )
        print(f"  ratio assistd_p50 / direct_p50 = {ratio:.3f}")
        if stream.cut_short:
            print(
                f"  BUG: {len(stream.cut_short)} assistd streams ended early (left out of the "
                f"timings): {'; '.join(stream.cut_short[:3])}"
            )
        print("  where a streamed run's time goes (server event stamps, p50 / p95 ms):")
        for label, values in stream.breakdown.items():
            print(f"    {label:<76}{ms(values):>7} / {ms(values, 0.95)}")
        if stream.tx_per_run:
            print(
                f"  per run: {ms(stream.events_per_run)} stream events written in "
                f"{ms(stream.tx_per_run)} transactions (p50)"
            )
        for line in cpu_line(stream.cpu, len(stream.assistd), "streamed run + direct call"):
            print(line)
        rows.append(
            (
                "1. streamed run wall p50 / direct p50",
                f"{ratio:.3f} ({ms(a_total)} / {ms(d_total)} ms)",
                f"<= {TARGET_RATIO:.2f}",
                ratio <= TARGET_RATIO,
            )
        )
        p50 = percentile(diff, 0.5)
        rows.append(
            (
                "2. TTFT assistd - direct, p50 (p95)",
                f"{p50:.1f} ms ({ms(diff, 0.95)} ms)",
                f"<= {TARGET_TTFT_MS:.0f} ms",
                p50 <= TARGET_TTFT_MS,
            )
        )
    if burst is not None:
        print()
        print(
            f"3. burst (after a warm-up of {args.burst_warmup} runs): {burst.n} runs created "
            f"at once ({BURST_WORDS} words, "
            f"{BURST_DELAY_MS} ms apart: ~1 s each), completion polled in the database"
        )
        print(
            f"  POSTs: all {burst.n} answered after {burst.posts_s:.2f} s "
            f"(p50 {burst.post_p50_ms:.0f} ms)"
        )
        done = "-" if burst.all_done_s is None else f"{burst.all_done_s:.2f} s"
        first = "-" if burst.first_done_s is None else f"{burst.first_done_s:.2f} s"
        half = "-" if burst.half_done_s is None else f"{burst.half_done_s:.2f} s"
        print(f"  completed: first {first}, half {half}, all {done}")
        if burst.error:
            print(f"  ERROR: {burst.error}")
        marks = []
        step = 0.5
        nxt = step
        for t, queued, running, completed in burst.timeline:
            if t >= nxt:
                marks.append(f"{t:.2f}s q{queued}/r{running}/c{completed}")
                nxt = (int(t / step) + 1) * step
        print("  timeline (queued/running/completed): " + ", ".join(marks))
        stamps = [v for v in burst.stamps.values() if None not in v[:5]]
        if stamps:
            t0 = burst.fired_wall

            def rel(idx: int) -> list[float]:
                return [(v[idx] - t0) * 1e3 for v in stamps]

            def span(a: int, b: int) -> list[float]:
                return [(v[b] - v[a]) * 1e3 for v in stamps]

            print("  server event stamps (ms; p50 / p95 / max):")
            for label, values in (
                ("run.created written, after firing", rel(0)),
                ("run.in_progress written (claimed), after firing", rel(1)),
                ("first delta written, after firing", rel(2)),
                ("run.completed written, after firing", rel(4)),
                ("queue wait: created -> in_progress", span(0, 1)),
                ("claimed -> first delta (load, backend first token ~100 ms)", span(1, 2)),
                ("first -> last delta (backend streams ~900 ms)", span(2, 3)),
            ):
                print(f"    {label:<60}{ms(values):>8} / {ms(values, 0.95):>7} / {max(values):.0f}")
            events = [int(v[5]) for v in stamps]
            txs = [int(v[6]) for v in stamps]
            print(f"  per run: {ms(events)} events in {ms(txs)} event-writing transactions (p50)")
        else:
            print("  (no event stamps: runs created without stream record no stream events)")
        if burst.commits is not None:
            print(f"  {burst.commits / burst.n:.1f} commits per run in all")
        if burst.sessions is not None:
            print(f"  database connections opened during the burst: {burst.sessions}")
        for line in cpu_line(burst.cpu, burst.n):
            print(line)
        ok = burst.all_done_s is not None and burst.all_done_s <= TARGET_BURST_S
        rows.append(
            (
                f"3. {burst.n} concurrent runs, 1 s backend: all done",
                f"{done} (POSTs {burst.posts_s:.2f} s)",
                f"<= {TARGET_BURST_S:g} s",
                ok,
            )
        )
    print()
    print(f"{'target':<46}{'measured':<32}{'goal':<12}result")
    for label, measured, goal, passed in rows:
        print(f"{label:<46}{measured:<32}{goal:<12}{'PASS' if passed else 'FAIL'}")
    for phase, paths in profiler.files.items():
        print()
        print(f"py-spy profile of assistd during '{phase}' ({', '.join(p.name for p in paths)}):")
        for line in summarize_profile(paths):
            print(line)
    return all(ok for *_, ok in rows)


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=40, help="measured streamed pairs (default 40)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up pairs (default 5)")
    p.add_argument("--runs", type=int, default=500, help="runs in the burst (default 500)")
    p.add_argument(
        "--burst-warmup",
        type=int,
        default=50,
        help="runs created at once and completed before the burst, not measured (default 50)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run N 'assistd worker' processes beside 'serve --no-worker' (default 0: the "
        "in-process worker)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="'assistd serve --processes N': server processes, each with its own in-process "
        "worker (default: one per CPU used, as in production; 1 with --workers)",
    )
    p.add_argument(
        "--cpus",
        type=int,
        default=2,
        help="restrict everything to this many CPUs (default 2; 0: no restriction)",
    )
    p.add_argument("--skip-stream", action="store_true", help="skip targets 1 and 2")
    p.add_argument("--skip-burst", action="store_true", help="skip target 3")
    p.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Postgres setting for the benchmark database (repeatable)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record every assistd process during each phase into DIR",
    )
    p.add_argument(
        "--samples",
        type=Path,
        metavar="FILE",
        help="write every measured streamed call (JSON lines) to FILE",
    )
    p.add_argument("--keep-log", action="store_true", help="keep the server logs (path printed)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.burst_warmup < 0:
        p.error("--burst-warmup must not be negative")
    if args.pairs < 1 or args.warmup < 0 or args.runs < 1 or args.workers < 0:
        p.error("--pairs and --runs must be positive, --warmup and --workers not negative")
    if args.processes is None:
        cpus = args.cpus if args.cpus > 0 else len(os.sched_getaffinity(0))
        args.processes = 1 if args.workers else min(cpus, len(os.sched_getaffinity(0)))
    if args.processes < 1:
        p.error("--processes must be positive")
    return args


def restrict_cpus(n: int) -> None:
    """Pin this process (and so everything it starts) to its first ``n`` CPUs."""
    available = sorted(os.sched_getaffinity(0))
    if n <= 0 or len(available) <= n:
        if 0 < len(available) < n:
            log(f"note: only {len(available)} CPUs available, fewer than --cpus {n}")
        return
    os.sched_setaffinity(0, available[:n])
    log(f"restricted to CPUs {available[:n]} (of {len(available)})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    restrict_cpus(args.cpus)
    use_uvloop()

    def body(cleanup: Cleanup, tmp: Path) -> bool:
        stack = start_stack(args, tmp, cleanup)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        profiler = Profiler(args.profile, stack.assistd_pids, cleanup)

        async def measure() -> tuple[StreamResult | None, BurstResult | None]:
            stream = None if args.skip_stream else await stream_phase(args, stack, profiler)
            stack.check_alive()
            burst = None if args.skip_burst else await burst_phase(args, stack, profiler)
            stack.check_alive()
            return stream, burst

        stream, burst = asyncio.run(measure())
        return report(args, stack, stream, burst, profiler)

    return run_main(body, args.strict, "assistd-bench-runs-")


if __name__ == "__main__":
    sys.exit(main())
