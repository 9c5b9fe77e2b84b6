"""Waiting in tests: poll a check until it holds, or bound a call that has no timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], timeout: float = 10.0, what: str = "", every: float = 0.05
) -> T:
    """Call ``check`` every ``every`` seconds until it returns something truthy (returned);
    fail after ``timeout`` seconds, saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(every)


def bounded(fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Call ``fn`` (an SDK poll helper, which has no timeout of its own) with a deadline."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"the call did not return within {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
