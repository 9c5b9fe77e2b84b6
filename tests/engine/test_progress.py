"""While a model streams for long, the stored message keeps up with what was streamed (saved
every second), so a run that dies mid-answer still shows the text it had written. A run that
nobody streams saves its message (and step) first with that periodic save, not at its first
token: a short answer is written once."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from assistd.models import Message, Run
from tests.engine.conftest import Env, create_claimed_run, make_thread, wait_idle


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
async def test_stored_text_follows_a_long_stream(env: Env, stream: bool) -> None:
    words = [f"w{i}" for i in range(40)]
    thread_id = await make_thread(
        env, "#script " + json.dumps({"reply": " ".join(words), "delay_ms": 60})
    )
    async with env.maker() as session, session.begin():
        run = await create_claimed_run(env, session, thread_id, env.worker.id, stream=stream)
        run_id = run.id
        gate = await env.worker.adopt(session, run_id)
    gate.set_result(None)

    async def stored() -> tuple[str, str] | None:
        async with env.maker() as session:
            message = await session.scalar(select(Message).where(Message.run_id == run_id))
        if message is None or not message.content:
            return None
        return message.status, message.content[0]["text"]["value"]

    # The answer takes ~2.4 s. Half a second in, a streamed run's message is stored (with
    # its events) and a run nobody streams has not written it yet.
    await asyncio.sleep(0.5)
    async with env.maker() as session:
        early = await session.scalar(select(Message.status).where(Message.run_id == run_id))
    assert early == ("in_progress" if stream else None)
    # After ~1.6 s the stored text is a real prefix of the answer, either way.
    await asyncio.sleep(1.1)
    midway = await stored()
    assert midway is not None
    status, text = midway
    assert status == "in_progress"
    assert text
    assert " ".join(words).startswith(text)
    assert len(text) < len(" ".join(words))

    await wait_idle(env.worker, 10)
    assert await stored() == ("completed", " ".join(words))
    async with env.maker() as session:
        assert (await session.get_one(Run, run_id)).status == "completed"
