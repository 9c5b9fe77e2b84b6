"""Faces: an API's rendering of the engine's events and tool calls.

The turn loop and the tools know no wire shape; the run's face turns what they produce into
the stream events and stored objects of the API the run belongs to.
"""

from __future__ import annotations

from typing import Any, Protocol

from assistd.engine.events import (
    ArgumentsDelta,
    EngineEvent,
    ToolCallStarted,
    ToolInputDelta,
    ToolOutput,
)
from assistd.engine.tools.base import ToolCall
from assistd.engine.tools.code_interpreter import code_of
from assistd.runs import wire

WireEvent = tuple[str, dict[str, Any]]


class Face(Protocol):
    """Renders a run's events and tool calls in one API's shape."""

    def render(self, event: EngineEvent) -> list[WireEvent]:
        """The stream events announcing ``event``."""

    def tool_call(self, call: ToolCall) -> dict[str, Any]:
        """``call`` as its step stores it."""


class AssistantsFace:
    """The Assistants API: ``thread.run.step.delta`` and friends, run step objects."""

    def render(self, event: EngineEvent) -> list[WireEvent]:
        """The stream events announcing ``event``."""
        match event:
            case ToolCallStarted():
                entry = wire.call_started(
                    event.index, event.call_id, event.kind, event.name, event.arguments
                )
            case ArgumentsDelta():
                entry = wire.call_delta(event.index, "function", {"arguments": event.arguments})
            case ToolInputDelta():
                entry = wire.call_delta(event.index, event.kind, {"input": event.text})
            case ToolOutput():
                outputs = wire.code_outputs(event.logs, event.images)
                indexed = [{"index": i, **o} for i, o in enumerate(outputs)]
                entry = wire.call_delta(event.index, event.kind, {"outputs": indexed})
        return [("thread.run.step.delta", wire.step_delta(event.step_id, entry))]

    def tool_call(self, call: ToolCall) -> dict[str, Any]:
        """``call`` as its step stores it."""
        if call.kind == "code_interpreter":
            outputs = wire.code_outputs(call.logs, call.images)
            return wire.code_interpreter_call(
                call.id, code_of(call.arguments), outputs, call.model_output, call.files
            )
        if call.kind == "file_search":
            results = [
                wire.search_result(h.file_id, h.filename, h.score, h.content) for h in call.hits
            ]
            return wire.file_search_call(
                call.id, call.ranker, call.score_threshold, results, call.queries
            )
        return wire.function_call(call.id, call.name, call.arguments)


ASSISTANTS = AssistantsFace()
