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
each run's events, the writing transactions and database connections of the burst, and the CPU
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
import json
import sys

import httpx
from _stack import (
    BURST_DELAY_MS,
    BURST_WORDS,
    INSTRUCTIONS,
    MODEL,
    STREAM_DELAY_MS,
    STREAM_WORDS,
    BurstResult,
    Profiler,
    RawConnection,
    Sample,
    Stack,
    StreamResult,
    chat_args,
    chat_main,
    event_stamps,
    fire_burst,
    open_connections,
    print_header,
    print_targets,
    raw_request,
    report_burst,
    report_stream,
    script,
    stream_breakdown,
    stream_pairs,
    timed_stream,
    warm_up,
)

DELTA = "thread.message.delta"


def create_assistant(stack: Stack) -> str:
    """The assistant every run of the benchmark uses."""
    headers = {"Authorization": f"Bearer {stack.key}", "OpenAI-Beta": "assistants=v2"}
    base = f"http://127.0.0.1:{stack.port}/v1"
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        r = c.post(
            "/assistants", json={"model": MODEL, "name": "Bench", "instructions": INSTRUCTIONS}
        )
        r.raise_for_status()
        return str(r.json()["id"])


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


async def assistd_call(
    conn: RawConnection, stack: Stack, assistant_id: str, thread_id: str
) -> Sample:
    """A streamed run on ``thread_id``, read until ``event: done``."""
    body = json.dumps({"assistant_id": assistant_id, "stream": True}).encode()
    headers = {**stack.headers(), "Accept": "text/event-stream"}
    raw = raw_request("POST", f"/v1/threads/{thread_id}/runs", headers, body)
    run_id = ended = ""

    def on_frame(event: str, data: str) -> tuple[str | None, bool]:
        nonlocal run_id, ended
        if event == DELTA:
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


async def stream_phase(
    args: argparse.Namespace, stack: Stack, profiler: Profiler, assistant_id: str
) -> StreamResult:
    """Targets 1 and 2: streamed runs (one fresh thread each) beside direct calls."""
    content, _ = script(STREAM_WORDS, STREAM_DELAY_MS)
    n = args.warmup + args.pairs
    threads = await create_threads(stack, n, content)

    async def call(conn: RawConnection, i: int) -> Sample:
        return await assistd_call(conn, stack, assistant_id, threads[i])

    result = await stream_pairs(args, stack, profiler, call, "thread.run.completed")
    await stream_breakdown(stack, result, DELTA)
    return result


def run_requests(stack: Stack, assistant_id: str, threads: list[str]) -> list[bytes]:
    """One non-streamed run creation per thread."""
    body = json.dumps({"assistant_id": assistant_id}).encode()
    headers = {**stack.headers(), "Accept": "*/*"}
    return [raw_request("POST", f"/v1/threads/{t}/runs", headers, body) for t in threads]


async def burst_phase(
    args: argparse.Namespace, stack: Stack, profiler: Profiler, assistant_id: str
) -> BurstResult:
    """Target 3: runs created at once on pre-created threads (not timed)."""
    content, _ = script(BURST_WORDS, BURST_DELAY_MS)
    if args.burst_warmup:
        threads = await create_threads(stack, args.burst_warmup, content)
        await warm_up(
            stack,
            run_requests(stack, assistant_id, threads),
            "SELECT count(*) FROM runs WHERE id = ANY(%s) AND status <> 'completed'",
        )
    threads = await create_threads(stack, args.burst_n, content)
    result = await fire_burst(
        stack, run_requests(stack, assistant_id, threads), profiler, "assistants"
    )
    result.stamps = await event_stamps(stack.url, result.ids, DELTA)
    return result


def main(argv: list[str] | None = None) -> int:
    args = chat_args(__doc__ or "", "run", argv)

    def measure(stack: Stack, profiler: Profiler) -> bool:
        assistant_id = create_assistant(stack)

        async def phases() -> tuple[StreamResult | None, BurstResult | None]:
            stream = (
                None
                if args.skip_stream
                else await stream_phase(args, stack, profiler, assistant_id)
            )
            stack.check_alive()
            burst = (
                None if args.skip_burst else await burst_phase(args, stack, profiler, assistant_id)
            )
            stack.check_alive()
            return stream, burst

        stream, burst = asyncio.run(phases())
        print_header("runs", args)
        rows = [] if stream is None else report_stream(stream, "run", DELTA)
        if burst is not None:
            rows += report_burst(burst, args.burst_warmup, "run", "POST /v1/threads/{id}/runs")
        return print_targets(rows, profiler)

    return chat_main(args, "assistd-bench-runs-", measure)


if __name__ == "__main__":
    sys.exit(main())
