"""Sandbox sessions: one container per thread, a warm pool, files in and out.

A thread's first code_interpreter call takes a pre-started container from the warm pool (or
starts one) and names it after the thread; later calls, from any worker process, find it by
that name. The driver in the container removes it after ``idle_seconds`` without a request;
``close()`` removes the containers this process started or claimed, and ``start()`` those
that a killed process of the same instance left behind.

Files move in bounded chunks over one attach connection per execution: inputs are streamed
from storage, outputs read back chunk by chunk within a per-execution budget. A request the
sandbox refuses (a bad name, a full disk) is reported to the model; only a sandbox that
stops or hangs is replaced.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from assistd.core import metrics
from assistd.core.config import SandboxSettings
from assistd.sandbox.containers import (
    Connection,
    Containers,
    SandboxGone,
    SandboxMissing,
    SandboxUnavailable,
    session_name,
)

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
"""How long the pool waits after failing to start a container."""
CHUNK = 1024 * 1024
"""Bytes of a file per request to the sandbox (base64 makes the line a third larger)."""
FULL_BYTES = 1024 * 1024
"""Less free space than this on /mnt/data or /tmp is reported to the model as full."""


class SandboxRefused(Exception):
    """The sandbox answered but could not do what was asked (it is still usable)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(str(answer.get("error") or "the sandbox refused the request"))
        self.errno = str(answer.get("errno") or "")


@dataclass
class InputFile:
    """A file to place under /mnt/data before code runs."""

    file_id: str
    path: str
    chunks: Callable[[], AsyncIterator[bytes]]
    """Its bytes, streamed (a large file is never held whole)."""


@dataclass
class OutputFile:
    """A file under /mnt/data that the code created or changed."""

    path: str
    data: bytes | None
    skipped: str | None = None
    """Why the bytes did not come back (too large)."""


@dataclass
class Execution:
    """What one execution produced."""

    logs: str = ""
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    error: dict[str, str] | None = None
    timed_out: bool = False
    notices: list[str] = field(default_factory=list)
    """What happened to the session (time limit, kernel restarted, sandbox replaced)."""


def _gauge(manager: SandboxManager) -> None:
    metrics.SANDBOX_SESSIONS.labels("pool").set(len(manager._pool))
    metrics.SANDBOX_SESSIONS.labels("session").set(len(manager._owned) - len(manager._pool))


class SandboxManager:
    """Runs code for threads in their sandbox sessions."""

    def __init__(self, settings: SandboxSettings, containers: Containers | None = None) -> None:
        self.settings = settings
        self.containers = containers or Containers(settings)
        self._pool: list[str] = []
        self._known: dict[str, str] = {}
        """thread id → container id, as last seen by this process."""
        self._owned: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._refill = asyncio.Event()
        self._pool_task: asyncio.Task[None] | None = None
        self._closed = False

    # ---- process lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """At a worker's start: remove the sandboxes that dead processes of this instance
        on this host left behind (a kill -9 skips ``close()``), then fill the pool."""
        try:
            removed = await asyncio.to_thread(self.containers.remove_orphans)
        except SandboxUnavailable as exc:
            log.warning("sandbox cleanup skipped: %s", exc)
        except Exception:
            log.warning("sandbox cleanup failed", exc_info=True)
        else:
            if removed:
                log.info("removed %d sandboxes of stopped processes: %s", len(removed), removed)
        self.start_pool()

    def start_pool(self) -> None:
        """Keep ``pool_size`` warm containers ready in the background."""
        if self.settings.pool_size > 0 and self._pool_task is None:
            self._refill.set()
            self._pool_task = asyncio.create_task(self._fill_pool(), name="sandbox-pool")

    async def _fill_pool(self) -> None:
        while not self._closed:
            await self._refill.wait()
            self._refill.clear()
            while len(self._pool) < self.settings.pool_size and not self._closed:
                name = self.containers.new_pool_name()
                starting = asyncio.ensure_future(
                    asyncio.to_thread(self.containers.start, name, "pool")
                )
                try:
                    container_id = await asyncio.shield(starting)
                except asyncio.CancelledError:
                    # Closing while a container starts in its thread: remove it once started.
                    with contextlib.suppress(Exception):
                        started = await starting
                        await asyncio.to_thread(self.containers.remove, started)
                    raise
                except SandboxUnavailable as exc:
                    # No engine or no image: code_interpreter calls will say so; the pool
                    # starts again after the next session that works.
                    log.warning("sandbox pool stopped: %s", exc)
                    self._pool_task = None
                    return
                except Exception as exc:
                    log.warning("sandbox pool: cannot start a container: %s", exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self._owned.add(container_id)
                if self._closed:
                    await asyncio.to_thread(self.containers.remove, container_id)
                    return
                self._pool.append(container_id)
                _gauge(self)

    async def close(self) -> None:
        """Stop the pool and remove every container this process started or claimed."""
        self._closed = True
        if self._pool_task is not None:
            self._pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pool_task
        owned, self._owned, self._pool = list(self._owned), set(), []
        self._known.clear()
        _gauge(self)
        await asyncio.gather(
            *(asyncio.to_thread(self.containers.remove, c) for c in owned),
            return_exceptions=True,
        )

    # ---- sessions -------------------------------------------------------------------------

    async def _acquire(self, thread_id: str) -> str:
        """A running container named for the thread: found, claimed from the pool, or new."""
        name = session_name(thread_id)
        while self._pool:
            container_id = self._pool.pop(0)
            self._refill.set()
            try:
                claimed = await asyncio.to_thread(self.containers.claim, container_id, name)
            except Exception:
                self._owned.discard(container_id)
                continue  # it idled out or died: try the next one
            if claimed:
                _gauge(self)
                return container_id
            self._pool.append(container_id)  # another process made the session meanwhile
            found = await asyncio.to_thread(self.containers.find, name)
            if found:
                return found
        try:
            container_id = await asyncio.to_thread(self.containers.start, name, "session")
        except (SandboxGone, SandboxUnavailable):
            raise
        except Exception:
            # Another process created the session meanwhile (the name is taken): use it.
            found = await asyncio.to_thread(self.containers.find, name)
            if found is None:
                raise
            return found
        self._owned.add(container_id)
        _gauge(self)
        return container_id

    async def _session(self, thread_id: str) -> str:
        known = self._known.get(thread_id)
        if known is not None:
            return known
        container_id = await asyncio.to_thread(self.containers.find, session_name(thread_id))
        if container_id is None:
            container_id = await self._acquire(thread_id)
        self._known[thread_id] = container_id
        return container_id

    async def _call(
        self,
        connection: Connection,
        payload: dict[str, Any],
        deadline: float,
        data: bytes | None = None,
    ) -> dict[str, Any]:
        """One request; ``deadline`` is how long to wait for the answer (in the thread)."""
        answer = await asyncio.to_thread(connection.call, payload, deadline, data)
        if not answer.get("ok", False):
            if answer.get("fatal"):
                raise SandboxGone(str(answer.get("error")))
            raise SandboxRefused(answer)
        return answer

    async def _put(self, connection: Connection, f: InputFile) -> None:
        """Stream one input file into place, at most ``CHUNK`` bytes per request (one chunk
        is held back to learn which one is the last)."""
        offset = 0
        held: bytes | None = None
        source = f.chunks()
        try:
            async for piece in source:
                for start in range(0, len(piece), CHUNK):
                    if held is not None:
                        await self._put_chunk(connection, f, offset, held, last=False)
                        offset += len(held)
                    held = piece[start : start + CHUNK] if len(piece) > CHUNK else piece
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._put_chunk(connection, f, offset, held or b"", last=True)

    async def _put_chunk(
        self, connection: Connection, f: InputFile, offset: int, data: bytes, *, last: bool
    ) -> None:
        payload = {"op": "put", "file_id": f.file_id, "path": f.path, "offset": offset}
        await self._call(connection, {**payload, "last": last}, 60, data)

    async def _sync_files(
        self, connection: Connection, files: list[InputFile], exact: bool
    ) -> list[str]:
        """Place the files not in place yet (with ``exact``, also remove those placed before
        that ``files`` no longer has); say why for each one that cannot be placed."""
        if not files and not exact:
            return []
        state = await self._call(connection, {"op": "state"}, 30)
        present: dict[str, str] = state.get("files") or {}
        if exact:
            wanted = {f.file_id for f in files}
            for file_id in [i for i in present if i not in wanted]:
                await self._call(connection, {"op": "drop", "file_id": file_id}, 30)
        notices = []
        for f in files:
            if present.get(f.file_id) == f.path:
                continue
            try:
                await self._put(connection, f)
            except SandboxRefused as exc:
                reason = str(exc)
                if exc.errno == "ENOSPC":
                    reason += " (/mnt/data is full: delete files there to make room)"
                notices.append(f"The file {f.path} could not be placed in /mnt/data: {reason}.")
        return notices

    async def _fetch(self, connection: Connection, listed: dict[str, Any], left: int) -> OutputFile:
        """Read back one output file in chunks, never past its listed size or ``left``."""
        path = str(listed["path"])
        if listed.get("skipped"):
            return OutputFile(path, None, str(listed["skipped"]))
        size = int(listed.get("size") or 0)
        if size > min(left, self.settings.max_file_bytes):
            return OutputFile(path, None, f"{size} bytes, over the output limit")
        data = bytearray()
        while len(data) < size:
            try:
                answer = await self._call(
                    connection,
                    {"op": "get", "path": path, "offset": len(data), "size": CHUNK},
                    60,
                )
            except SandboxRefused as exc:
                return OutputFile(path, None, f"cannot be read: {exc}")
            data += base64.b64decode(answer.get("data") or "")
            if answer.get("eof"):
                break
        return OutputFile(path, bytes(data[:size]))

    async def _run(
        self, connection: Connection, code: str, files: list[InputFile], exact: bool
    ) -> Execution:
        """Place the files, run the code, bring its output files back."""
        notices = await self._sync_files(connection, files, exact)
        settings = self.settings
        timeout = settings.exec_timeout_seconds
        answer = await self._call(
            connection,
            {
                "op": "exec",
                "code": code,
                "timeout": timeout,
                "max_file_bytes": settings.max_file_bytes,
                "max_files_bytes": settings.max_files_bytes,
            },
            timeout + 30 + settings.start_timeout_seconds,
        )
        result = _execution(answer, settings)
        left = settings.max_files_bytes
        for listed in answer.get("files") or []:
            out = await self._fetch(connection, listed, left)
            left -= len(out.data or b"")
            result.files.append(out)
        result.notices[:0] = notices
        return result

    async def execute(
        self, thread_id: str, code: str, files: list[InputFile], *, exact: bool = False
    ) -> Execution:
        """Run ``code`` in the thread's session, after placing ``files`` under /mnt/data
        (``exact``: they are all its input files; others placed before are removed)."""
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        async with lock:
            for attempt in range(2):
                container_id = await self._session(thread_id)
                try:
                    connection = await asyncio.to_thread(self.containers.connect, container_id)
                except SandboxMissing:
                    # It idled out (or was removed) since this process last used it: a
                    # new session, as if it were the thread's first call.
                    self._known.pop(thread_id, None)
                    self._owned.discard(container_id)
                    if attempt == 0:
                        continue
                    return await self._replace(thread_id, container_id, files, SandboxGone())
                except SandboxGone as exc:
                    return await self._replace(thread_id, container_id, files, exc)
                try:
                    result = await self._run(connection, code, files, exact)
                except SandboxRefused as exc:
                    # The sandbox is fine but could not do this (the session is kept).
                    return Execution(
                        error={"name": "SandboxError", "value": str(exc)},
                        notices=[f"The sandbox could not run this code: {exc}."],
                    )
                except (SandboxGone, TimeoutError) as exc:
                    log.warning("sandbox of thread %s lost: %s", thread_id, exc)
                    return await self._replace(thread_id, container_id, files, exc)
                finally:
                    await asyncio.to_thread(connection.close)
                if self._pool_task is None and not self._closed:
                    self.start_pool()
                return result
            raise AssertionError("unreachable")

    async def _replace(
        self, thread_id: str, container_id: str, files: list[InputFile], cause: Exception
    ) -> Execution:
        """The container died or hung: remove it, start a fresh session, say so."""
        self._known.pop(thread_id, None)
        self._owned.discard(container_id)
        await asyncio.to_thread(self.containers.remove, container_id)
        what = (
            "did not respond and was stopped"
            if isinstance(cause, TimeoutError)
            else "stopped unexpectedly (it may have run out of memory)"
        )
        notice = (
            f"The sandbox {what} while running this code. A new sandbox was started: "
            "variables and imports from earlier calls are gone; the input files were "
            "placed in /mnt/data again, files the code had written there are gone."
        )
        with contextlib.suppress(Exception):
            fresh = await self._session(thread_id)
            connection = await asyncio.to_thread(self.containers.connect, fresh)
            try:
                await self._sync_files(connection, files, False)
            finally:
                await asyncio.to_thread(connection.close)
        return Execution(error={"name": "SandboxError", "value": what}, notices=[notice])

    def sessions(self) -> list[str]:
        """The keys (thread or container ids) of the sessions this process has used."""
        return list(self._known)

    async def drop(self, thread_id: str) -> None:
        """Remove a thread's session (the thread was deleted)."""
        container_id = self._known.pop(thread_id, None)
        if container_id is None:
            container_id = await asyncio.to_thread(self.containers.find, session_name(thread_id))
        if container_id is not None:
            self._owned.discard(container_id)
            await asyncio.to_thread(self.containers.remove, container_id)


def _execution(answer: dict[str, Any], settings: SandboxSettings) -> Execution:
    """The execution an ``exec`` answer describes (its files are read back after)."""
    result = Execution(
        logs=str(answer.get("logs") or ""),
        images=[base64.b64decode(i) for i in answer.get("images") or []],
        error=answer.get("error"),
        timed_out=bool(answer.get("timed_out")),
    )
    limit = int(settings.exec_timeout_seconds)
    if answer.get("kernel_died"):
        result.notices.append(
            "The Python kernel died while running this code (it may have run out of memory; "
            f"the sandbox has {settings.memory} of memory). It was restarted: variables, "
            "imports and files in /tmp are gone, files in /mnt/data are kept."
        )
        result.error = result.error or {"name": "KernelDied", "value": "the kernel died"}
    elif answer.get("restarted"):
        result.notices.append(
            f"The code ran longer than the {limit} s time limit and did not stop when "
            "interrupted, so the Python kernel was restarted: variables, imports and files "
            "in /tmp are gone, files in /mnt/data are kept."
        )
    elif result.timed_out:
        result.notices.append(
            f"The code ran longer than the {limit} s time limit and was interrupted. The "
            "session is still running with its variables."
        )
    for mount, free_key, size_key in (
        ("/mnt/data", "data_free", "data_size"),
        ("/tmp", "tmp_free", "tmp_size"),
    ):
        free, size = answer.get(free_key), answer.get(size_key)
        if isinstance(free, int) and isinstance(size, int) and free < FULL_BYTES:
            result.notices.append(
                f"{mount} is full ({free} of {size} bytes free): writing there fails until "
                "files are deleted."
            )
    return result
