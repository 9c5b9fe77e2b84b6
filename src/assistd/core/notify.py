"""One LISTEN connection per process, fanning Postgres notifications out to waiters.

Waiters subscribe to ``(channel, payload)`` or to a whole channel. Nothing is lost if a
notification is missed (reconnects, overload): every waiter also polls with a timeout, so
NOTIFY only makes things fast, never correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import psycopg

from assistd.core.logs import Repeats

log = logging.getLogger(__name__)

Handler = Callable[[str], None]


class Listener:
    """Dispatches notifications of some channels to subscribed ``asyncio.Event``s/handlers."""

    def __init__(self, dsn: str, channels: list[str]) -> None:
        self.dsn = dsn
        self.channels = channels
        self._events: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._watchers: list[Callable[[bool], None]] = []
        self._errors = Repeats(log)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Start listening in the background (returns once connected or after 5 s)."""
        self._task = asyncio.create_task(self._run(), name="notify-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 5)

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(self, channel: str, payload: str) -> asyncio.Event:
        """An event set whenever ``payload`` is notified on ``channel``."""
        event = asyncio.Event()
        self._events[(channel, payload)].add(event)
        return event

    def unsubscribe(self, channel: str, payload: str, event: asyncio.Event) -> None:
        """Forget a subscription."""
        waiters = self._events.get((channel, payload))
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._events[(channel, payload)]

    def on(self, channel: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for every notification on ``channel``."""
        self._handlers[channel].append(handler)

    def on_connection(self, watcher: Callable[[bool], None]) -> None:
        """Call ``watcher(True)`` whenever listening starts (notifications may have been
        missed before) and ``watcher(False)`` when the connection is lost."""
        self._watchers.append(watcher)

    def _tell(self, up: bool) -> None:
        for watcher in self._watchers:
            try:
                watcher(up)
            except Exception:
                log.exception("connection watcher failed")

    def _dispatch(self, channel: str, payload: str) -> None:
        for event in self._events.get((channel, payload), ()):
            event.set()
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("notification handler failed")

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    for channel in self.channels:
                        await conn.execute(f'LISTEN "{channel}"')
                    self.connected.set()
                    self._errors.ok("LISTEN connection lost")
                    self._tell(True)
                    delay = 0.2
                    # Wake every waiter once: anything notified while we were away is
                    # picked up by their next read.
                    for waiters in list(self._events.values()):
                        for event in waiters:
                            event.set()
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set():
                    self.connected.clear()
                    self._tell(False)
                self._errors.failed("LISTEN connection lost", exc, traceback=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
