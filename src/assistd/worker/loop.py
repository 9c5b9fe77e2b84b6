"""The worker loop: claim runs (woken by NOTIFY, polling as fallback), execute them
concurrently, heartbeat them, and reap or expire runs nobody is driving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.containers import service as containers_service
from assistd.core import ids
from assistd.core.channels import QUEUE_CHANNEL, Wake, parse_queue_payload
from assistd.core.db import engine_of, transaction
from assistd.core.ids import process_tag
from assistd.core.logs import Repeats
from assistd.core.notify import Listener
from assistd.engine import prompt
from assistd.engine.executor import EngineDeps, RunExecutor
from assistd.files import service as files_service
from assistd.llm import tokens
from assistd.models import Assistant, Message, Run, Thread
from assistd.responses import service as responses_service
from assistd.runs.starter import RunDiscarded
from assistd.uploads import service as uploads_service
from assistd.vector_stores import ingest
from assistd.vector_stores import service as vector_store_service
from assistd.vector_stores.parser_process import ParserPool
from assistd.worker import queue

log = logging.getLogger(__name__)

CLAIM_BATCH = 256
"""Runs claimed per transaction at most (a burst is taken in a few short transactions)."""

SHUTDOWN_ERROR = {
    "code": "server_error",
    "message": "The worker shut down before the run finished.",
}


class EarlyRun:
    """A run started before the statement inserting it returned (``Worker.start_early``);
    tell it how the insert went."""

    def __init__(
        self,
        worker: Worker,
        run: Run,
        thread: Thread,
        assistant: Assistant,
        gate: asyncio.Future[None],
    ) -> None:
        self._worker = worker
        self._rows = (run, thread, assistant)
        self._gate = gate

    def inserted(self, fresh: bool) -> None:
        """The run is in the database. ``fresh``: no message came or went between the read
        its context came from and the insert, so it goes on; otherwise it is started again
        with its context read anew (the first start is dropped without writing anything)."""
        if fresh:
            self._gate.set_result(None)
            return
        run, thread, assistant = self._rows
        self._gate.set_exception(RunDiscarded(run.id))
        self._worker.start_inserted(run, thread, assistant, None)

    def dropped(self) -> None:
        """The insert failed: the run never existed, and nothing of it is written."""
        if not self._gate.done():
            self._gate.set_exception(RunDiscarded(self._rows[0].id))


class Worker:
    """Executes runs until ``stop()``; any number may share one database. It is its process's
    ``runs.starter.Starter``: ``read_maker`` reads the context of the runs started so."""

    def __init__(
        self,
        deps: EngineDeps,
        listener: Listener,
        read_maker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.deps = deps
        self.settings = deps.settings.worker
        self.listener = listener
        self.id = process_tag()
        self._read_maker = read_maker or deps.maker
        self._wake = asyncio.Event()
        self._full = False
        self._ingest_wake = asyncio.Event()
        if deps.parsers is None:  # (deps built by hand, as some tests do)
            deps.parsers = ParserPool(deps.settings.ingest)
        self._parsers = deps.parsers
        self._stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executors: dict[str, RunExecutor] = {}
        self._background: set[asyncio.Task[None]] = set()
        # The loops below fail together while the database is away: one traceback each.
        self._errors = Repeats(log)
        listener.on(QUEUE_CHANNEL, self._on_notify)

    def _on_notify(self, payload: str) -> None:
        note = parse_queue_payload(payload)
        if note is None:
            return
        kind, target = note
        if kind is Wake.QUEUED:
            self._wake.set()
        elif kind is Wake.INGEST:
            self._ingest_wake.set()
        elif kind is Wake.CANCEL and target in self._executors:
            self._executors[target].cancel.set()
        elif kind is Wake.THREAD_DELETED and self.deps.sandbox is not None:
            thread_id = target
            task = asyncio.create_task(
                self._drop_sandbox(thread_id), name=f"drop-sandbox-{thread_id}"
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        """Work until stopped; then let in-flight runs finish within the grace period."""
        log.info("worker %s started (concurrency %d)", self.id, self.settings.concurrency)
        # Load the tokenizers before the first run needs one (about a second each, off the
        # loop): the default and any a routed model declares.
        names = {"o200k_base", *(r.tokenizer for r in self.deps.router.routes.values())}
        for name in sorted(n for n in names if n):
            await asyncio.to_thread(tokens.encoding, name)
        if self.deps.sandbox is not None:
            await self.deps.sandbox.start()
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._maintenance_loop(), name="worker-maintenance"),
            *(
                asyncio.create_task(self._ingest_loop(), name=f"worker-ingest-{i}")
                for i in range(self.settings.ingest_concurrency)
            ),
        ]
        try:
            await self._claim_loop()
        finally:
            await self._drain()
            if self.deps.sandbox is not None:
                await self.deps.sandbox.close()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._parsers.close()
            log.info("worker %s stopped", self.id)

    async def _drop_sandbox(self, thread_id: str) -> None:
        sandbox = self.deps.sandbox
        if sandbox is None:
            return
        try:
            await sandbox.drop(thread_id)
        except Exception:
            log.warning(
                "removing the sandbox of deleted thread %s failed", thread_id, exc_info=True
            )

    async def _drop_expired_containers(self) -> None:
        """Remove the sandbox sessions of containers that expired (or were deleted)."""
        sandbox = self.deps.sandbox
        if sandbox is None:
            return
        keys = [k for k in sandbox.sessions() if k.startswith(ids.CONTAINER)]
        async with transaction(self.deps.maker) as session:
            expired = await containers_service.expired_among(session, keys)
        for container_id in expired:
            await self._drop_sandbox(container_id)

    def can_start(self) -> bool:
        """Whether a run created in this process may be handed straight to this worker."""
        return not self._stopping.is_set() and len(self._tasks) < self.settings.concurrency

    async def adopt(self, session: AsyncSession, run_id: str) -> asyncio.Future[None]:
        """Start a run this process is creating, already claimed for this worker, before its
        creating transaction (``session``) commits.

        The run's context is read in that transaction and the model is called at once, so
        the commit overlaps the model's first token; everything the run writes waits for the
        returned gate: resolve it once the transaction has committed, or fail it (any
        exception) if it rolled back, and the run is dropped without a trace.
        """
        ctx = await prompt.load_context(
            session, self.deps.storage, run_id, fresh=True, parsers=self._parsers
        )
        # The executor changes its copy of the run in memory (its final status) and may do so
        # before this transaction commits: detached, that copy is never flushed with it.
        session.expunge(ctx.run)
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._start(run_id, preloaded=ctx, gate=gate)
        return gate

    def start_early(
        self,
        run: Run,
        thread: Thread,
        assistant: Assistant,
        messages: list[Message],
    ) -> EarlyRun:
        """Start a run, already claimed for this worker, while the statement inserting it is
        still on its way (``runs.service.create_run_direct``): its context is the thread's
        ``messages`` read with the thread and the assistant, so the model is called at once.
        Nothing the run writes is written before the returned ``EarlyRun`` hears how the
        insert went."""
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        storage, read_maker = self.deps.storage, self._read_maker

        async def load() -> prompt.RunContext:
            return await prompt.context_of(read_maker, storage, run, thread, assistant, messages)

        self._start(run.id, gate=gate, loader=load)
        return EarlyRun(self, run, thread, assistant, gate)

    def start_inserted(
        self,
        run: Run,
        thread: Thread,
        assistant: Assistant,
        messages: list[Message] | None,
    ) -> None:
        """Start a run this process has just inserted, already claimed for this worker, on
        the thread's ``messages`` as read before the insert (still the thread's: its version
        did not change), or on its context read anew (``None``: after the insert, so every
        message the thread lock ordered before it is there). A dropped early start of the
        run is let go first."""
        storage, read_maker = self.deps.storage, self._read_maker
        engine = engine_of(self.deps.maker)
        dropped = self._tasks.get(run.id)

        async def load() -> prompt.RunContext:
            if dropped is not None:
                await asyncio.wait([dropped])
            if messages is not None:
                return await prompt.context_of(
                    read_maker, storage, run, thread, assistant, messages
                )
            return await prompt.load_new_context(
                engine, read_maker, storage, run, thread, assistant
            )

        self._start(run.id, loader=load)

    def stop(self) -> None:
        """Stop claiming new runs."""
        self._stopping.set()
        self._wake.set()

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.settings.concurrency - len(self._tasks)
            # Full: a run that ends frees a slot and wakes this loop (otherwise the queue's
            # NOTIFY or the poll does; a claim per finished run would be wasted).
            self._full = free <= 0
            claimed: list[str] = []
            if free > 0:
                try:
                    async with transaction(self.deps.maker) as session:
                        claimed = await queue.claim(session, self.id, min(free, CLAIM_BATCH))
                    self._errors.ok("claiming runs failed")
                except Exception as exc:
                    self._errors.failed("claiming runs failed", exc)
            for run_id in claimed:
                self._start(run_id)
            if claimed and len(claimed) == min(free, CLAIM_BATCH):
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def _ingest_loop(self) -> None:
        """Ingest files added to vector stores, one at a time per loop (CPU-bound)."""
        deps = self.deps
        while not self._stopping.is_set():
            self._ingest_wake.clear()
            job = None
            try:
                async with transaction(deps.maker) as session:
                    job = await ingest.claim(session, self.id, self.settings.lease_seconds)
                self._errors.ok("claiming a file to ingest failed")
            except Exception as exc:
                self._errors.failed("claiming a file to ingest failed", exc)
            if job is not None:
                await ingest.ingest(
                    deps.maker, deps.storage, deps.embedders, job, self.id, self._parsers
                )
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ingest_wake.wait(), self.settings.poll_seconds)

    def _start(
        self,
        run_id: str,
        *,
        preloaded: prompt.RunContext | None = None,
        gate: asyncio.Future[None] | None = None,
        loader: Callable[[], Awaitable[prompt.RunContext]] | None = None,
    ) -> None:
        executor = RunExecutor(
            self.deps,
            run_id,
            asyncio.Event(),
            worker_id=self.id,
            preloaded=preloaded,
            gate=gate,
            loader=loader,
        )
        self._executors[run_id] = executor
        task = asyncio.create_task(executor.execute(), name=f"execute-{run_id}")
        self._tasks[run_id] = task

        def done(_: asyncio.Task[None]) -> None:
            # (A dropped early start may end after the run's next executor started.)
            if self._tasks.get(run_id) is task:
                self._tasks.pop(run_id, None)
                self._executors.pop(run_id, None)
            if self._full:
                self._wake.set()

        task.add_done_callback(done)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                # Runs apart from files: a run's lease never waits on an ingestion's locks.
                async with transaction(self.deps.maker) as session:
                    owned = await queue.heartbeat(session, self.id, list(self._tasks))
                async with transaction(self.deps.maker) as session:
                    await ingest.heartbeat(session, self.id)
                self._errors.ok("heartbeat failed")
            except Exception as exc:
                self._errors.failed("heartbeat failed", exc)
                continue
            for run_id, status in owned:
                if status == "cancelling" and run_id in self._executors:
                    self._executors[run_id].cancel.set()

    async def _maintenance_loop(self) -> None:
        retention = self.deps.settings.runs.event_retention_seconds
        rounds = 0
        while True:
            await asyncio.sleep(self.settings.reap_seconds)
            rounds += 1
            try:
                async with transaction(self.deps.maker) as session:
                    reaped = await queue.reap(session, self.settings.lease_seconds)
                async with transaction(self.deps.maker) as session:
                    expired = await queue.expire(session)
                if reaped:
                    log.warning("reaped %d runs of lost workers: %s", len(reaped), reaped)
                if expired:
                    log.info("expired %d runs", len(expired))
                if rounds % 30 == 0:
                    async with transaction(self.deps.maker) as session:
                        await queue.prune_events(session, retention)
                    async with transaction(self.deps.maker) as session:
                        await queue.prune_watchers(session)
                if rounds % 5 == 0:
                    async with transaction(self.deps.maker) as session:
                        gone = await responses_service.prune(
                            session, self.deps.settings.runs.response_retention_days
                        )
                    if gone:
                        log.info("deleted %d unstored or old responses", gone)
                    await self._drop_expired_containers()
                    async with transaction(self.deps.maker) as session:
                        purged = await vector_store_service.purge_expired(session)
                    if purged:
                        log.info("purged %d chunks of expired vector stores", purged)
                    async with transaction(self.deps.maker) as session:
                        keys = await files_service.delete_expired(session)
                    for key in keys:
                        await self.deps.storage.delete(key)
                    if keys:
                        log.info("deleted %d expired files", len(keys))
                    async with transaction(self.deps.maker) as session:
                        parts = await uploads_service.expire(session)
                    for key in parts:
                        await self.deps.storage.delete(key)
                self._errors.ok("maintenance failed")
            except Exception as exc:
                self._errors.failed("maintenance failed", exc)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        grace = self.settings.shutdown_grace_seconds
        log.info("waiting up to %.0fs for %d runs", grace, len(self._tasks))
        _, pending = await asyncio.wait(list(self._tasks.values()), timeout=grace)
        if pending:
            # Out of time: end the rest as failed rather than leave them in progress.
            for run_id, executor in list(self._executors.items()):
                executor.abort(SHUTDOWN_ERROR)
                log.warning("run %s interrupted by shutdown", run_id)
            await asyncio.wait(pending, timeout=10)
