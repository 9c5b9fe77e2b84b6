"""code_interpreter: the model's code run in the thread's sandbox; plots and written files
are kept as Files."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.containers import sandbox as containers_sandbox
from assistd.containers import service as containers_service
from assistd.core import metrics
from assistd.core.db import transaction
from assistd.core.errors import AssistdError
from assistd.engine.events import Emit, ToolCallStarted, ToolInputDelta, ToolOutput
from assistd.engine.tools.base import ToolCall, ToolContext
from assistd.files import service as files_service
from assistd.llm.chat import BackendError
from assistd.sandbox.containers import SandboxUnavailable
from assistd.sandbox.manager import Execution, InputFile

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def partial_code(arguments: str) -> str:
    """The ``code`` string decoded from JSON arguments that may still be arriving."""
    match = re.search(r'"code"\s*:\s*"', arguments)
    if match is None:
        return ""
    raw, out, i = arguments[match.end() :], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            break
        if ch == "\\":
            if i + 1 >= len(raw):
                break
            nxt = raw[i + 1]
            if nxt == "u":
                if i + 6 > len(raw):
                    break
                with contextlib.suppress(ValueError):
                    out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def code_of(arguments: str) -> str:
    """The code the model passed to code_interpreter (JSON ``{"code": ...}`` or bare code)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        stripped = arguments.strip()
        return partial_code(arguments) if stripped.startswith("{") else stripped
    if isinstance(parsed, dict):
        return str(parsed.get("code") or parsed.get("input") or "")
    return str(parsed)


def clip(text: str, limit: int) -> str:
    """Head and tail of ``text`` when it is longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"


def _outcome(result: Execution) -> str:
    """How an execution ended (a metrics label)."""
    if result.notices and result.error and result.error.get("name") == "SandboxError":
        return "sandbox_replaced"
    if result.timed_out:
        return "timed_out"
    return "error" if result.error else "ok"


def _send_input(call: ToolCall, code: str, emit: Emit) -> None:
    """Stream the part of the code not yet sent as an input delta."""
    if len(code) <= call.streamed:
        return
    piece, call.streamed = code[call.streamed :], len(code)
    emit(ToolInputDelta(call.step_id, call.index, "code_interpreter", piece))


class CodeInterpreterTool:
    """Runs code in the thread's sandbox; the code streams as the model writes it."""

    kind = "code_interpreter"

    def started(self, call: ToolCall, emit: Emit) -> None:
        """Announce the call, then the code written so far."""
        emit(ToolCallStarted(call.step_id, call.index, call.id, self.kind, call.name, ""))
        if call.arguments:
            _send_input(call, partial_code(call.arguments), emit)

    def grew(self, call: ToolCall, piece: str, emit: Emit) -> None:
        """Stream the code decoded so far (the arguments are JSON still arriving)."""
        _send_input(call, partial_code(call.arguments), emit)

    async def run(self, calls: list[ToolCall], ctx: ToolContext) -> None:
        """Execute the calls in the thread's sandbox, in order."""
        sandbox = ctx.deps.sandbox
        if sandbox is None:
            raise BackendError("server_error", "code_interpreter is not available on this server.")
        storage = ctx.deps.storage
        files = [
            InputFile(f.file_id, f.path, functools.partial(storage.stream, f.storage_key))
            for f in ctx.run.sandbox_files
        ]
        limit = ctx.deps.settings.sandbox.max_output_chars
        for call in calls:
            code = code_of(call.arguments)
            _send_input(call, code, ctx.emit)
            try:
                if ctx.container_id is not None:
                    result = await containers_sandbox.execute(
                        sandbox, ctx.deps.maker, storage, ctx.project_id, ctx.container_id, code
                    )
                else:
                    result = await sandbox.execute(ctx.thread_id, code, files)
            except AssistdError as exc:  # the container expired or is gone
                raise BackendError("server_error", exc.message) from exc
            except SandboxUnavailable as exc:
                metrics.SANDBOX_EXECUTIONS.labels("unavailable").inc()
                raise BackendError(
                    "server_error", f"code_interpreter is not available: {exc}"
                ) from exc
            metrics.SANDBOX_EXECUTIONS.labels(_outcome(result)).inc()
            images, written = await _store_outputs(call, result, ctx)
            logs_text = result.logs + "".join(f"\n[{n}]" for n in result.notices)
            shown = logs_text.strip() or not images
            call.logs = clip(logs_text, 10 * limit) if shown else None
            call.images = images
            # What the model sees: the output, what was shown and written, and what happened.
            seen = [clip(result.logs, limit)] if result.logs.strip() else []
            seen += ["[a plot was shown to the user]" for _ in images]
            for path, size in written:
                seen.append(f"[file written: {path} ({size} bytes)]")
            seen += [f"[{n}]" for n in result.notices]
            call.model_output = "\n".join(seen) or "(no output)"
            ctx.emit(ToolOutput(call.step_id, call.index, self.kind, call.logs, tuple(images)))


async def _store_outputs(
    call: ToolCall, result: Execution, ctx: ToolContext
) -> tuple[list[str], list[tuple[str, int]]]:
    """Keep plots and written files: as Files (purpose ``assistants_output``), or in a
    response's container as its files."""
    deps = ctx.deps
    images: list[str] = []
    written: list[tuple[str, int]] = []
    max_bytes = deps.settings.limits.max_upload_bytes

    async def keep(session: AsyncSession, name: str, data: bytes) -> str:
        if ctx.container_id is not None:
            row = await containers_service.keep_output(
                session, deps.storage, ctx.project_id, ctx.container_id, name, data, max_bytes
            )
            return row.id
        kept = await files_service.create(
            session,
            deps.storage,
            ctx.project_id,
            filename=name,
            purpose="assistants_output",
            source=io.BytesIO(data),
            max_bytes=max_bytes,
        )
        return kept.id

    async with transaction(deps.maker) as session:
        for n, png in enumerate(result.images):
            images.append(await keep(session, f"{call.id}_{n}.png", png))
        for out in result.files:
            if out.data is None:
                result.notices.append(
                    f"{out.path} ({out.skipped or 'not returned'}) was not kept as a file."
                )
                continue
            call.files[out.path] = await keep(session, out.path, out.data)
            written.append((out.path, len(out.data)))
    return images, written
