"""A thread's sandbox is removed after the idle timeout, and the next call gets a fresh one."""

from __future__ import annotations

import asyncio
import time
import uuid

from assistd.core.config import SandboxSettings
from assistd.sandbox.containers import session_name
from assistd.sandbox.manager import SandboxManager


async def test_idle_session_is_removed_then_recreated(sandbox_image: str) -> None:
    manager = SandboxManager(
        SandboxSettings(image=sandbox_image, idle_seconds=2, pool_size=0, instance="pytest-idle")
    )
    thread = f"thread_idle{uuid.uuid4().hex[:12]}"
    name = session_name(thread)
    try:
        first = await manager.execute(thread, "kept = 'yes'\nprint(kept)", [])
        assert first.logs == "yes\n"
        assert await asyncio.to_thread(manager.containers.find, name) is not None
        # No request for longer than idle_seconds: the driver exits, the engine removes it.
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(manager.containers.find, name) is not None:
            assert time.monotonic() < deadline, "the idle sandbox was not removed"
            await asyncio.sleep(0.5)
        # The next call starts a new session (the old state is gone) and says nothing odd.
        second = await manager.execute(thread, "print('kept' in globals())", [])
        assert second.logs == "False\n"
        assert second.notices == []
    finally:
        await manager.close()
    assert await asyncio.to_thread(manager.containers.find, name) is None
