"""Drive one run from ``in_progress`` to ``requires_action`` or a terminal status.

The executor owns the run while it works: every write goes through the run's ``RunSink``,
in order, so the stream events it produces are exactly the order the SDK expects
(``step.created`` → ``message.created`` → deltas → ``message.completed`` → ``step.completed``
→ ``run.completed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids, logs, metrics
from assistd.core.clock import now
from assistd.core.db import transaction
from assistd.engine import citations, prompt
from assistd.engine.deps import EngineDeps, build_engine_deps
from assistd.engine.events import (
    EngineEvent,
    ImagesShown,
    MessageEnded,
    MessageStarted,
    ReasoningDelta,
    ReasoningEnded,
    RefusalDelta,
    StepEnded,
    StepStarted,
    TextDelta,
)
from assistd.engine.face import AssistantsFace, Face, face_for
from assistd.engine.sink import LOCKED_RUN, Event, LostOwnership, RunSink, Update
from assistd.engine.tools import FUNCTION, ServerTool, Tool, ToolCall, ToolContext, builtin_tools
from assistd.llm import tokens
from assistd.llm.chat import BackendError, ChatRequest, Usage
from assistd.models import Message, Run, RunStep, StoredResponse
from assistd.models.rows import plain_row, table_of
from assistd.responses import service as responses_service
from assistd.runs import lifecycle, status, wire

__all__ = ["EngineDeps", "RunExecutor", "build_engine_deps"]

log = logging.getLogger(__name__)

MAX_TURNS = 25
SAVE_EVERY = 1.0
"""Seconds between saves of a streaming message's text."""


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the run is no longer ours."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LostOwnership):
            return True
        seen = seen.__cause__
    return False


@dataclass
class _OpenMessage:
    message_id: str
    step_id: str
    created_at: int
    text: str = ""
    refusal: str = ""
    images: list[str] = field(default_factory=list)
    """image_file ids shown before the text (plots from code_interpreter)."""
    saved_at: float = field(default_factory=time.monotonic)
    row: Message | None = None
    """The message as inserted (kept to announce its end without reading it back)."""
    step: RunStep | None = None
    unsaved: bool = False
    """Its rows (message, step) are not queued for insertion yet (a run nobody streams)."""

    def content(
        self, annotations: list[dict[str, Any]] | None = None, linked: list[str] | None = None
    ) -> list[dict[str, Any]]:
        return wire.message_content(self.images, self.text, self.refusal, annotations, linked)


@dataclass
class _OpenToolStep:
    step_id: str
    created_at: int
    calls: dict[int, ToolCall] = field(default_factory=dict)


@dataclass
class _TurnResult:
    function_calls: list[ToolCall]
    usage: Usage
    finish_reason: str | None
    prompt_too_long: bool = False


def _usage_dict(usage: Usage) -> dict[str, int]:
    return wire.usage(usage.prompt_tokens, usage.completion_tokens)


class RunExecutor:
    """Executes one claimed run."""

    def __init__(
        self,
        deps: EngineDeps,
        run_id: str,
        cancel: asyncio.Event,
        worker_id: str | None = None,
        *,
        preloaded: prompt.RunContext | None = None,
        gate: asyncio.Future[None] | None = None,
        loader: Callable[[], Awaitable[prompt.RunContext]] | None = None,
    ) -> None:
        """``preloaded``: the run's context, read by the transaction creating the run;
        ``gate``: resolves when that transaction commits (fails when it rolls back, and then
        the executor stops without writing anything); ``loader``: reads the context instead
        of the default (a run its creator already holds parts of)."""
        self.deps = deps
        self.face: Face = AssistantsFace()
        """Renders the run's events (chosen once the run is loaded)."""
        self._loader = loader
        self.run_id = run_id
        self.cancel = cancel
        self.sink = RunSink(deps.maker, run_id, owner=worker_id, gate=gate)
        self._preloaded = preloaded
        self._discarded = False
        if gate is not None:
            gate.add_done_callback(self._on_gate)
        self.include: list[str] = []
        self.project_id = self.thread_id = self.assistant_id = ""
        self._message: _OpenMessage | None = None
        self._tool_step: _OpenToolStep | None = None
        self._completion_tokens_used = 0
        self._prompt_tokens_used = 0
        self._tools: dict[str, ServerTool] = {}
        self._citations: dict[tuple[int, int], citations.Source] = {}
        self._pending_images: list[str] = []
        self._sandbox_paths: dict[str, str] = {}
        self._plots_of: dict[str, list[str]] = {}
        """Written file id → the plots its call showed (a figure saved and shown is one)."""
        self.abort_error: dict[str, Any] | None = None
        self._response: StoredResponse | None = None
        """The response the run executes (the Responses API's runs)."""
        self.outcome = "lost"
        """How this executor left the run (for metrics)."""
        self.model = ""
        self.error_code: str | None = None
        """The code of the ``last_error`` the run ended with, or its incomplete reason."""

    def _on_gate(self, gate: asyncio.Future[None]) -> None:
        if gate.cancelled() or gate.exception() is not None:
            self._discarded = True
            self.outcome = "discarded"
            self.cancel.set()

    def abort(self, error: dict[str, Any]) -> None:
        """Stop now and end the run ``failed`` with ``error`` (used at shutdown)."""
        self.abort_error = error
        self.cancel.set()

    async def execute(self) -> None:
        """Run to a resting state; never raises (failures end the run ``failed``)."""
        started = time.perf_counter()
        logs.run_id.set(self.run_id)
        try:
            await self._execute()
        finally:
            seconds = time.perf_counter() - started
            metrics.RUNS_FINISHED.labels(self.outcome).inc()
            metrics.RUN_SECONDS.labels(self.outcome).observe(seconds)
            self._report_end(seconds)

    def _report_end(self, seconds: float) -> None:
        """Count the tokens this executor used and log one line for how it left the run."""
        used = {"prompt": self._prompt_tokens_used, "completion": self._completion_tokens_used}
        project = self.project_id if self.deps.settings.metrics.per_project else None
        metrics.count_tokens(self.model, project, used["prompt"], used["completion"])
        ms = round(seconds * 1000, 1)
        fields: dict[str, Any] = {
            "status": self.outcome,
            "model": self.model,
            "prompt_tokens": used["prompt"],
            "completion_tokens": used["completion"],
            "duration_ms": ms,
        }
        error = ""
        if self.error_code:
            fields["error_code"] = self.error_code
            error = f" error={self.error_code}"
        log.info(
            "run %s %s model=%s tokens=%d+%d %.1f ms%s",
            self.run_id,
            self.outcome,
            self.model or "-",
            used["prompt"],
            used["completion"],
            ms,
            error,
            extra={"fields": fields},
        )

    async def _execute(self) -> None:
        work = asyncio.create_task(self._work(), name=f"run-{self.run_id}")
        cancel_wait = asyncio.create_task(self.cancel.wait())
        try:
            await asyncio.wait({work, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                if self._discarded:
                    return  # the run was never created
                if self.abort_error is not None:
                    await self._end("failed", self.abort_error)
                else:
                    await self._end("cancelled")
                return
            exc = work.exception()
            if exc is None:
                return
            if _lost(exc):
                log.warning("run %s: no longer ours, stopping", self.run_id)
                return
            if isinstance(exc, TimeoutError):
                await self._end("expired")
            elif isinstance(exc, BackendError):
                await self._end("failed", {"code": exc.code, "message": exc.message})
            else:
                log.error("run %s failed", self.run_id, exc_info=exc)
                await self._end(
                    "failed",
                    {
                        "code": "server_error",
                        "message": "The server had an error while processing the run.",
                    },
                )
        finally:
            cancel_wait.cancel()
            await self.sink.close()

    # ---- the loop -------------------------------------------------------------------------

    async def _work(self) -> None:
        ctx = await self._begin()
        deadline = ctx.run.expires_at
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        async with asyncio.timeout(timeout):
            for _ in range(MAX_TURNS):
                self._message, self._tool_step = None, None
                result = await self._model_turn(ctx)
                following = await self._after_turn(ctx, result)
                if following is None:
                    return
                ctx = following
            raise BackendError("server_error", "The run exceeded the maximum number of turns.")

    async def _begin(self) -> prompt.RunContext:
        """The run's context (as its creator read it, if it did), and what the run says
        about how to write it."""
        if self._preloaded is not None:
            ctx, self._preloaded = self._use(self._preloaded), None
        elif self._loader is not None:
            ctx = self._use(await self._loader())
        else:
            ctx = await self._load()
        run = ctx.run
        # A run nobody streams records no stream events (its rows are written all the same).
        self.sink.record = run.streamed
        self.include = list(run.include or [])
        self.face = face_for(run, ctx.response)
        self._response = ctx.response
        self.project_id, self.thread_id = run.project_id, run.thread_id
        self.assistant_id = run.assistant_id
        self.model = run.model
        return ctx

    async def _after_turn(
        self, ctx: prompt.RunContext, result: _TurnResult
    ) -> prompt.RunContext | None:
        """End the run, hand it to the client, or run the built-in calls: the next turn's
        context, or None when the run rests."""
        if result.prompt_too_long:
            await self._incomplete("max_prompt_tokens")
            return None
        cut = "content_filter" if result.finish_reason == "content_filter" else None
        if result.finish_reason == "length" and result.function_calls:
            cut = "max_completion_tokens"
        if cut is not None:
            # The answer was cut: tool calls the model was writing are not run.
            if self._tool_step is not None:
                step = self._tool_step
                await self.sink.apply(self._record_tool_step_op(step, result.usage, done=False))
            await self._incomplete(cut)
            return None
        builtin = [c for c in result.function_calls if c.kind != FUNCTION.kind]
        functions = [c for c in result.function_calls if c.kind == FUNCTION.kind]
        if builtin:
            await self._run_tools(ctx, builtin)
        if self._tool_step is not None:
            step = self._tool_step
            done = not functions or self._response is not None
            await self.sink.apply(self._record_tool_step_op(step, result.usage, done))
        if functions and self._response is not None:
            # A response ends with its function calls; the client answers in a new one.
            await self._complete(ctx.run)
            self.outcome = "completed"
            return None
        if functions:
            await self.sink.apply(self._requires_action_op(functions))
            self.outcome = "requires_action"
            return None
        if builtin:
            return await self._load()  # the next turn sees the results
        if result.finish_reason == "length" and ctx.run.max_completion_tokens is not None:
            await self._incomplete("max_completion_tokens")
            return None
        await self._complete(ctx.run)
        self.outcome = "completed"
        return None

    async def _incomplete(self, reason: str) -> None:
        """End the run ``incomplete`` for ``reason``."""
        await self.sink.apply(self._incomplete_op(reason))
        self.outcome = "incomplete"

    async def _load(self) -> prompt.RunContext:
        async with transaction(self.deps.maker) as session:
            ctx = await prompt.load_context(
                session, self.deps.storage, self.run_id, parsers=self.deps.parsers
            )
        return self._use(ctx)

    def _use(self, ctx: prompt.RunContext) -> prompt.RunContext:
        self._tools = builtin_tools(ctx)
        self._citations = citations.lookup(ctx.search_calls())
        self._sandbox_paths = ctx.sandbox_paths()
        return ctx

    async def _run_tools(self, ctx: prompt.RunContext, calls: list[ToolCall]) -> None:
        """Run the turn's built-in calls, tool by tool; keep what they showed and wrote."""
        container = self._response.container_id if self._response is not None else None
        tool_ctx = ToolContext(
            self.deps, ctx, self.project_id, self.thread_id, self._emit, container
        )
        for kind, tool in self._tools.items():
            mine = [c for c in calls if c.kind == kind]
            if mine:
                await tool.run(mine, tool_ctx)
            for call in mine:
                self._pending_images += call.images
                self._sandbox_paths.update(call.files)
                self._plots_of.update(dict.fromkeys(call.files.values(), call.images))

    def _emit(self, event: EngineEvent) -> None:
        """Record ``event`` as the face renders it (nothing for a run nobody streams)."""
        if self.sink.record:
            for name, data in self.face.render(event):
                self.sink.event(name, data)

    async def _request(self, ctx: prompt.RunContext) -> tuple[ChatRequest, int] | None:
        """The turn's chat request and its prompt's tokens, fitted to the window and the
        run's budgets (None: the prompt exceeds ``max_prompt_tokens``)."""
        run = ctx.run
        tools = prompt.chat_tools(ctx)
        used_prompt, used_completion = prompt.used_tokens(ctx)
        used_completion += self._completion_tokens_used
        max_tokens = None
        if run.max_completion_tokens is not None:
            max_tokens = max(1, run.max_completion_tokens - used_completion)
        window = self.deps.router.context_window(run.model)
        budget = window - min(max_tokens or 4096, window // 4)
        prompt_left = None
        if run.max_prompt_tokens is not None:
            prompt_left = run.max_prompt_tokens - used_prompt - self._prompt_tokens_used
            budget = min(budget, prompt_left)
        messages, prompt_tokens = await prompt.fit(
            prompt.system_message(ctx, self.deps.settings.sandbox.exec_timeout_seconds),
            prompt.history_messages(ctx),
            prompt.run_messages(ctx),
            budget,
            drop_oldest=(run.truncation_strategy or {}).get("type", "auto") == "auto",
            tokenizer=self.deps.router.tokenizer(run.model),
        )
        if prompt_left is not None and prompt_tokens > prompt_left:
            return None
        if (run.truncation_strategy or {}).get("type") == "disabled" and prompt_tokens > budget:
            raise BackendError(
                "context_length_exceeded",
                f"Your input exceeds the context window of this model ({prompt_tokens} "
                f"tokens, {budget} available). Please adjust your input and try again.",
            )
        choice = prompt.chat_tool_choice(run, tools)
        if tools and self._tool_calls_exhausted(ctx):
            choice = "none"
        request = ChatRequest(
            model=run.model,
            messages=messages,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=run.parallel_tool_calls if tools else None,
            temperature=run.temperature,
            top_p=run.top_p,
            response_format=run.response_format,
            max_completion_tokens=max_tokens,
            reasoning_effort=run.reasoning_effort,
        )
        return request, prompt_tokens

    def _tool_calls_exhausted(self, ctx: prompt.RunContext) -> bool:
        """Whether a response has made the built-in tool calls its ``max_tool_calls`` allows."""
        if self._response is None:
            return False
        limit = self._response.params.get("max_tool_calls")
        if limit is None:
            return False
        made = sum(
            1
            for step in ctx.steps
            for call in step.step_details.get("tool_calls", [])
            if call.get("type") != "function"
        )
        return made >= int(limit)

    async def _model_turn(self, ctx: prompt.RunContext) -> _TurnResult:
        run = ctx.run
        built = await self._request(ctx)
        if built is None:
            return _TurnResult([], Usage(), None, prompt_too_long=True)
        request, prompt_tokens = built
        backend = self.deps.router.backend_for(run.model)
        usage: Usage | None = None
        finish: str | None = None
        reasoning: list[str] = []  # [item id, text so far…] of the turn's open reasoning
        async with contextlib.aclosing(backend.stream(request)) as chunks:
            async for chunk in chunks:
                if chunk.reasoning:
                    reasoning = self._on_reasoning(reasoning, chunk.reasoning)
                if reasoning and (chunk.content or chunk.refusal or chunk.tool_calls):
                    reasoning = self._end_reasoning(reasoning)
                if chunk.content or chunk.refusal:
                    self._on_text(chunk.content or "", chunk.refusal or "")
                if chunk.tool_calls:
                    self._close_message(usage=None)
                    for delta in chunk.tool_calls:
                        self._on_tool_delta(delta.index, delta.id, delta.name, delta.arguments)
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason:
                    finish = chunk.finish_reason
        if reasoning:
            self._end_reasoning(reasoning)
        calls = list(self._tool_step.calls.values()) if self._tool_step else []
        if usage is None:
            # The backend reported no usage: count what was sent and received ourselves.
            written = (self._message.text if self._message else "") + "".join(
                c.name + c.arguments for c in calls
            )
            tokenizer = self.deps.router.tokenizer(run.model)
            usage = Usage(prompt_tokens, tokens.count_text(written, tokenizer))
        self._completion_tokens_used += usage.completion_tokens
        self._prompt_tokens_used += usage.prompt_tokens
        if self._message is not None:
            reason = "max_tokens" if finish == "length" and run.max_completion_tokens else None
            if finish == "content_filter":
                reason = finish
            self._close_message(usage=None if calls else usage, incomplete_reason=reason)
        return _TurnResult(function_calls=calls, usage=usage, finish_reason=finish)

    # ---- streaming pieces -----------------------------------------------------------------

    def _on_reasoning(self, reasoning: list[str], text: str) -> list[str]:
        """Stream a piece of the model's reasoning (shown, not stored: no API keeps it)."""
        if not reasoning:
            reasoning = [ids.new_id(ids.REASONING_ITEM)]
        reasoning.append(text)
        self._emit(ReasoningDelta(reasoning[0], text))
        return reasoning

    def _end_reasoning(self, reasoning: list[str]) -> list[str]:
        self._emit(ReasoningEnded(reasoning[0], "".join(reasoning[1:])))
        return []

    def _on_text(self, text: str, refusal: str) -> None:
        if self._message is None:
            self._message = _OpenMessage(
                message_id=ids.new_id(ids.MESSAGE),
                step_id=ids.new_id(ids.STEP),
                created_at=now(),
                images=self._pending_images,
            )
            self._pending_images = []
            self._open_message(self._message)
        msg = self._message
        if text:
            msg.text += text
            if time.monotonic() - msg.saved_at > SAVE_EVERY:
                # Keep the stored message close to what was streamed, so a run that dies
                # (and is reaped) still shows the text it had written.
                msg.saved_at = time.monotonic()
                if msg.unsaved:
                    self._save_rows(msg)
                else:
                    self.sink.update_later(
                        [Update(table_of(Message), msg.message_id, {"content": msg.content()})],
                        [],
                    )
            if not self.sink.record:
                return
            self._emit(TextDelta(msg.message_id, len(msg.images), text))
        if refusal:
            index = len(msg.images) + (1 if msg.text else 0)
            msg.refusal += refusal
            self._emit(RefusalDelta(msg.message_id, index, refusal))

    async def _locked_run(self, session: AsyncSession) -> Run:
        """The run, locked: the row the sink's ownership check locked in this transaction."""
        run = session.info.get(LOCKED_RUN)
        if isinstance(run, Run) and run.id == self.run_id:
            return run
        return await lifecycle.lock_run(session, self.run_id)

    def _close_message(self, usage: Usage | None, incomplete_reason: str | None = None) -> None:
        """Queue the open message's end (completed, or incomplete for ``incomplete_reason``)
        and its step's, with their events."""
        msg = self._message
        if msg is None:
            return
        self._message = None
        if msg.unsaved:
            # Inserted and updated in one batch (the sink folds the update into the insert).
            self._save_rows(msg)
        message, step = msg.row, msg.step
        assert message is not None
        assert step is not None
        notes = citations.annotate(msg.text, self._citations)
        notes += citations.file_paths(msg.text, self._sandbox_paths)
        notes.sort(key=lambda n: int(n["start_index"]))
        stamp = now()
        # (Assistants events show the message's metadata as it is when written.)
        patch = 0 if isinstance(self.face, AssistantsFace) else None
        linked = self._linked_images(msg)
        fields: dict[str, Any] = {"content": msg.content(notes, linked)}
        # A delta too: SDK handlers see on_image_file_done only for parts a delta added.
        first = len(fields["content"]) - len(linked)
        linked_shown = (
            self.face.render(ImagesShown(msg.message_id, tuple(linked), first)) if linked else []
        )
        if incomplete_reason:
            fields.update(
                status="incomplete",
                incomplete_at=stamp,
                incomplete_details={"reason": incomplete_reason},
            )
        else:
            fields.update(status="completed", completed_at=stamp)
        step_fields: dict[str, Any] = {"status": "completed", "completed_at": stamp}
        if usage is not None:
            step_fields["usage"] = _usage_dict(usage)
        for key, value in fields.items():
            setattr(message, key, value)
        for key, value in step_fields.items():
            setattr(step, key, value)
        self.sink.update_later(
            [
                Update(table_of(Message), message.id, fields, patch=("metadata",)),
                Update(table_of(RunStep), step.id, step_fields),
            ],
            [(name, data, None) for name, data in linked_shown]
            + [(name, data, patch) for name, data in self.face.render(MessageEnded(message))]
            + [(name, data, None) for name, data in self.face.render(StepEnded(step))]
            if self.sink.record
            else [],
        )

    def _linked_images(self, msg: _OpenMessage) -> list[str]:
        """Images the code wrote that the text links, but not one whose figure the message
        already shows; Assistants runs only (a response's files are its container's)."""
        if not isinstance(self.face, AssistantsFace):
            return []
        shown = set(msg.images)
        return [
            f
            for f in citations.linked_images(msg.text, self._sandbox_paths)
            if f not in shown and shown.isdisjoint(self._plots_of.get(f, ()))
        ]

    def _on_tool_delta(
        self, index: int, call_id: str | None, name: str | None, arguments: str
    ) -> None:
        if self._tool_step is None:
            self._tool_step = _OpenToolStep(step_id=ids.new_id(ids.STEP), created_at=now())
            self.sink.later(self._open_tool_step_op(self._tool_step))
        step = self._tool_step
        call = step.calls.get(index)
        if call is None:
            call = ToolCall(
                id=call_id or ids.new_id(ids.CALL),
                name=name or "",
                step_id=step.step_id,
                index=index,
                arguments=arguments,
            )
            step.calls[index] = call
            # Built-in tools show as themselves; a name the run has no tool for is a function.
            tool: Tool = self._tools.get(call.name, FUNCTION)
            call.kind = tool.kind
            tool.started(call, self._emit)
            return
        if name and not call.name:
            call.name = name
        call.arguments += arguments
        if arguments:
            self._tools.get(call.kind, FUNCTION).grew(call, arguments, self._emit)

    # ---- database operations (run inside the sink, in order) ------------------------------

    def _step_row(
        self, step_id: str, created_at: int, kind: str, details: dict[str, Any]
    ) -> RunStep:
        return RunStep(
            id=step_id,
            project_id=self.project_id,
            run_id=self.run_id,
            thread_id=self.thread_id,
            assistant_id=self.assistant_id,
            created_at=created_at,
            type=kind,
            status="in_progress",
            step_details=details,
            last_error=None,
            expired_at=None,
            cancelled_at=None,
            failed_at=None,
            completed_at=None,
            metadata_={},
            usage=None,
        )

    def _open_message(self, msg: _OpenMessage) -> None:
        """Queue the message_creation step and its message (plain inserts) with their events."""
        step = self._step_row(
            msg.step_id,
            msg.created_at,
            "message_creation",
            wire.message_creation(msg.message_id),
        )
        message = Message(
            id=msg.message_id,
            project_id=self.project_id,
            thread_id=self.thread_id,
            created_at=msg.created_at,
            role="assistant",
            content=[],
            attachments=[],
            metadata_={},
            status="in_progress",
            assistant_id=self.assistant_id,
            run_id=self.run_id,
            completed_at=None,
            incomplete_at=None,
            incomplete_details=None,
        )
        msg.row, msg.step = message, step
        if not self.sink.record:
            # Nobody streams this run: its rows are saved with the first periodic save of
            # the text (SAVE_EVERY) or with the message's end, whichever comes first, so a
            # short answer costs one write instead of two. A polling client sees the step
            # and the message at most SAVE_EVERY late.
            msg.unsaved = True
            return
        produced = self.face.render(StepStarted(step)) + self.face.render(MessageStarted(message))
        if msg.images:
            produced += self.face.render(ImagesShown(msg.message_id, tuple(msg.images)))
        self.sink.insert_later([plain_row(step), plain_row(message)], produced)

    def _save_rows(self, msg: _OpenMessage) -> None:
        """Queue the insertion of a message whose rows were held back, with its text."""
        assert msg.row is not None
        assert msg.step is not None
        msg.unsaved = False
        msg.row.content = msg.content()
        self.sink.insert_later([plain_row(msg.step), plain_row(msg.row)], [])

    def _open_tool_step_op(self, open_step: _OpenToolStep) -> Any:
        async def op(session: AsyncSession) -> list[Event]:
            step = self._step_row(
                open_step.step_id,
                open_step.created_at,
                "tool_calls",
                wire.tool_calls([]),
            )
            session.add(step)
            await session.flush()
            return self.face.render(StepStarted(step))

        return op

    def _record_tool_step_op(self, open_step: _OpenToolStep, usage: Usage, done: bool) -> Any:
        calls = [self.face.tool_call(c) for c in open_step.calls.values()]

        async def op(session: AsyncSession) -> list[Event]:
            step = await session.get_one(RunStep, open_step.step_id)
            step.step_details = wire.tool_calls(calls)
            step.usage = _usage_dict(usage)
            if not done:
                return []  # waits for the client's function outputs
            step.status = "completed"
            step.completed_at = now()
            return self.face.render(StepEnded(step))

        return op

    def _requires_action_op(self, calls: list[ToolCall]) -> Any:
        action = wire.submit_tool_outputs([(c.id, c.name, c.arguments) for c in calls])
        wait = self.deps.settings.runs.requires_action_seconds

        async def op(session: AsyncSession) -> list[Event]:
            run = await self._locked_run(session)
            return await status.require_action(session, run, action, now() + wait)

        return op

    async def _complete(self, run: Run) -> None:
        """End the run ``completed`` (``run``: its row as loaded; what others may have
        changed since, its metadata, is read back by the update)."""
        name, values = status.complete(run)
        self._add_to_conversation()
        await self.sink.update(
            [Update(table_of(Run), run.id, values, patch=("metadata", "usage"), run_usage=True)],
            [(name, wire.run_data(run), 0)] if self.sink.record else [],
        )

    def _incomplete_op(self, reason: str) -> Any:
        """End the run ``incomplete`` for ``reason``."""
        self.error_code = reason

        async def op(session: AsyncSession) -> list[Event]:
            return await status.incomplete(session, await self._locked_run(session), reason)

        self._add_to_conversation()
        return op

    def _add_to_conversation(self) -> None:
        """Queue the addition of a conversation response's output to its conversation (in
        the transaction that ends the run: queued just before that write, nothing between)."""
        response = self._response
        if response is None or response.conversation_id is None:
            return

        async def op(session: AsyncSession) -> list[Event]:
            await responses_service.append_output(session, await self._locked_run(session))
            return []

        self.sink.later(op)

    async def _end(self, outcome: str, last_error: dict[str, Any] | None = None) -> None:
        """Cancel, expire or fail the run, saving what the model had written so far."""
        self.outcome = outcome
        self.error_code = None if last_error is None else str(last_error.get("code") or "")
        partial = self._message
        if partial is not None and partial.unsaved:
            with contextlib.suppress(RuntimeError):  # the sink failed: the fallback below
                self._save_rows(partial)

        async def op(session: AsyncSession) -> list[Event]:
            if partial is not None:
                message = await session.get(Message, partial.message_id)
                if message is not None and message.status == "in_progress":
                    message.content = partial.content()
            run = await self._locked_run(session)
            return await status.end_executing(session, run, outcome, last_error)

        try:
            await self.sink.apply(op)
        except Exception as exc:
            if _lost(exc):
                return
            # The sink itself failed (database trouble): try once more directly.
            log.exception("run %s: ending through the sink failed", self.run_id)
            with contextlib.suppress(Exception):
                from assistd.runs import events

                async with transaction(self.deps.maker) as session:
                    await events.append(session, self.run_id, await op(session))
