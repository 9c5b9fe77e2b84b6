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
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _stack import (
    Cleanup,
    RawConnection,
    Server,
    db_sessions,
    log,
    mint_key,
    percentile,
    process_cpu_s,
    revoke_key,
    run_main,
    start_embedded_postgres,
    start_server,
    use_uvloop,
)

TARGET_RATIO = 3.0
N_MESSAGES = 20


# ---- setup ---------------------------------------------------------------------------------


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


@dataclass
class LoadResult:
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float | None


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
    p.add_argument(
        "--keep-log", action="store_true", help="keep the server log (its path is printed)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.rounds < 1:
        raise SystemExit("--clients, --requests and --rounds must be positive")
    use_uvloop()

    def body(cleanup: Cleanup, tmp: Path) -> bool:
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
        new_sessions = None if sessions0 is None or sessions1 is None else sessions1 - sessions0 - 1
        return report(args, endpoints, result, new_sessions)

    return run_main(body, args.strict, "assistd-bench-")


if __name__ == "__main__":
    sys.exit(main())
