"""Stream events handed from a run's sink to the stream tails of the same process.

A run's event log is written only by its current owner (see ``runs/events.py``); while that
owner is this process's worker, its sink publishes every batch here right after the commit,
in commit order, and tails in this process take the rows from memory instead of reading them
back from the database after a NOTIFY. Tails of other processes (and of runs executed
elsewhere) keep reading the database, so nothing depends on this being present.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

Row = tuple[int, str, dict[str, Any]]
"""(event id, event name, data)."""


class _Subscriber:
    __slots__ = ("rows", "wake")

    def __init__(self, wake: asyncio.Event) -> None:
        self.rows: list[Row] = []
        self.wake = wake


class LocalEvents:
    """Per run: the tails waiting in this process, and whether its writer is here."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[_Subscriber]] = {}
        self._writers: dict[str, tuple[int, int]] = {}
        """run id → (open sinks, token of the newest one)."""
        self._tokens = itertools.count(1)

    def subscribe(self, run_id: str, wake: asyncio.Event) -> list[Row]:
        """Collect the run's published rows in the returned list, setting ``wake``."""
        subscriber = _Subscriber(wake)
        self._subscribers.setdefault(run_id, []).append(subscriber)
        return subscriber.rows

    def unsubscribe(self, run_id: str, rows: list[Row]) -> None:
        subscribers = self._subscribers.get(run_id, [])
        subscribers[:] = [s for s in subscribers if s.rows is not rows]
        if not subscribers:
            self._subscribers.pop(run_id, None)

    def open_writer(self, run_id: str) -> None:
        """A sink of this process writes the run's events from now on."""
        count, _ = self._writers.get(run_id, (0, 0))
        self._writers[run_id] = (count + 1, next(self._tokens))

    def close_writer(self, run_id: str) -> None:
        count, token = self._writers.get(run_id, (1, 0))
        if count > 1:
            self._writers[run_id] = (count - 1, token)
        else:
            self._writers.pop(run_id, None)
        for subscriber in self._subscribers.get(run_id, []):
            subscriber.wake.set()  # the tail goes back to reading the database

    def writer(self, run_id: str) -> int | None:
        """A token of the sink writing the run's events in this process (None: none does).

        Events written before that sink opened (the claim's ``in_progress``) reach a tail
        only from the database: a tail reads the database again whenever the token changes.
        """
        entry = self._writers.get(run_id)
        return entry[1] if entry is not None else None

    def publish(self, run_id: str, rows: list[Row]) -> None:
        """Rows the run's writer has just committed, in order."""
        for subscriber in self._subscribers.get(run_id, []):
            subscriber.rows.extend(rows)
            subscriber.wake.set()


HUB = LocalEvents()
"""The process's hub (the API and the in-process worker share one event loop)."""
