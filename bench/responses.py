"""Responses benchmark: streamed responses beside direct backend calls, and a burst of
concurrent background responses.

    python bench/responses.py [--pairs 40] [--responses 500] [--workers 0] [--profile DIR]

Starts the same stack as ``bench/runs.py`` (embedded Postgres in a temporary directory, the
scripted OpenAI-compatible backend ``tests/support/scripted_chat.py``, ``assistd serve``
pointed at it) and measures, in the same run:

1. **Streamed response vs direct call.** A backend answer of 20 words, 10 ms apart (~200 ms).
   ``POST /v1/responses`` with ``stream: true`` and one input message (the ``#script``; the
   instructions as the direct call's system message), read until ``response.completed``,
   against a streamed ``POST /v1/chat/completions`` sent straight to the backend with the same
   script, read until ``data: [DONE]``. The two alternate (ABBA order), ``--pairs`` of each
   after a warm-up. Reports p50 wall time of each and the ratio (target <= 1.05).
2. **Time to first token.** Per pair, (request sent -> first ``response.output_text.delta``
   frame) minus (request sent -> first content delta of the direct call): p50 (the target,
   <= 10 ms) and p95.
3. **Burst.** After a warm-up (``--burst-warmup`` background responses created at once and
   completed, not measured), ``--responses`` ``POST /v1/responses`` with ``background: true``
   (not streamed, one connection each, opened beforehand) are written at once against a
   backend answering in ~1 s (10 words, 100 ms apart). Each must answer ``queued`` at once.
   Completion is observed in the database (responses execute as runs with
   ``runs.api = 'responses'``, counted by status every 20 ms on a separate connection), so
   client polling does not load the server. Reports how long the POSTs took and when all
   responses were completed (target <= 2.5 s).

Besides the table with PASS/FAIL per target it prints where the time went, from the stamps
assistd writes on every stream event of a response's run (``run_events.created_at``; a
background response that is not streamed records none), the writing transactions and database
connections of the burst, and the CPU each process used. The options (CPU pinning,
``--processes``, ``--workers``, ``--pg-set``, ``--profile DIR`` for py-spy, ``--samples``)
are ``bench/runs.py``'s; every process and the temporary directory are cleaned up at exit,
including on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import psycopg
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

DELTA = "response.output_text.delta"
FAILED = ("response.failed", "response.incomplete", "error")


def response_request(stack: Stack, content: str, **options: bool) -> bytes:
    """``POST /v1/responses`` with one input message ``content``."""
    body = json.dumps(
        {
            "model": MODEL,
            "instructions": INSTRUCTIONS,
            "input": [{"type": "message", "role": "user", "content": content}],
            **options,
        }
    ).encode()
    accept = "text/event-stream" if options.get("stream") else "application/json"
    return raw_request("POST", "/v1/responses", {**stack.headers(), "Accept": accept}, body)


async def response_call(conn: RawConnection, raw: bytes) -> Sample:
    """A streamed response, read until ``response.completed`` (``run_id``: the response's id
    until :func:`run_ids_of` replaces it)."""
    response_id = ended = ""

    def on_frame(event: str, data: str) -> tuple[str | None, bool]:
        nonlocal response_id, ended
        if event == DELTA:
            return str(json.loads(data)["delta"]), False
        if event == "response.created":
            response_id = json.loads(data)["response"]["id"]
        elif event in FAILED:
            raise RuntimeError(f"response ended {event}: {data[:500]}")
        elif event == "response.completed":
            ended = event
        return None, event == "response.completed"

    sample = await timed_stream(conn, raw, on_frame)
    sample.run_id, sample.ended = response_id, ended
    return sample


async def run_ids_of(url: str, response_ids: list[str]) -> dict[str, str]:
    """Each response's run."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        rows = await (
            await db.execute("SELECT id, run_id FROM responses WHERE id = ANY(%s)", [response_ids])
        ).fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


async def stream_phase(args: argparse.Namespace, stack: Stack, profiler: Profiler) -> StreamResult:
    """Targets 1 and 2: streamed responses beside direct calls."""
    content, _ = script(STREAM_WORDS, STREAM_DELAY_MS)
    raw = response_request(stack, content, stream=True)

    async def call(conn: RawConnection, i: int) -> Sample:
        return await response_call(conn, raw)

    result = await stream_pairs(args, stack, profiler, call, "response.completed")
    runs = await run_ids_of(stack.url, [s.run_id for s in result.assistd])
    for s in result.assistd:
        s.run_id = runs.get(s.run_id, s.run_id)
    await stream_breakdown(stack, result, DELTA)
    return result


async def burst_phase(args: argparse.Namespace, stack: Stack, profiler: Profiler) -> BurstResult:
    """Target 3: background responses created at once."""
    content, _ = script(BURST_WORDS, BURST_DELAY_MS)
    raw = response_request(stack, content, background=True)
    if args.burst_warmup:
        await warm_up(
            stack,
            [raw] * args.burst_warmup,
            "SELECT count(*) FROM responses r JOIN runs u ON u.id = r.run_id "
            "WHERE r.id = ANY(%s) AND u.status <> 'completed'",
        )
    result = await fire_burst(stack, [raw] * args.burst_n, profiler, "responses")
    runs = await run_ids_of(stack.url, result.ids)
    result.stamps = await event_stamps(stack.url, list(runs.values()), DELTA)
    return result


def main(argv: list[str] | None = None) -> int:
    args = chat_args(__doc__ or "", "response", argv)

    def measure(stack: Stack, profiler: Profiler) -> bool:
        async def phases() -> tuple[StreamResult | None, BurstResult | None]:
            stream = None if args.skip_stream else await stream_phase(args, stack, profiler)
            stack.check_alive()
            burst = None if args.skip_burst else await burst_phase(args, stack, profiler)
            stack.check_alive()
            return stream, burst

        stream, burst = asyncio.run(phases())
        print_header("responses", args)
        rows = [] if stream is None else report_stream(stream, "response", DELTA)
        if burst is not None:
            rows += report_burst(
                burst, args.burst_warmup, "response", "POST /v1/responses, background: true"
            )
        return print_targets(rows, profiler)

    return chat_main(args, "assistd-bench-responses-", measure)


if __name__ == "__main__":
    sys.exit(main())
