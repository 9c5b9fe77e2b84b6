"""Faces: an API's rendering of the engine's events and tool calls.

The turn loop and the tools know no wire shape; the run's face turns what they produce into
the stream events and stored objects of the API the run belongs to.
"""

from __future__ import annotations

from typing import Any, Protocol

from assistd.engine.events import (
    ArgumentsDelta,
    EngineEvent,
    ImagesShown,
    MessageEnded,
    MessageStarted,
    RefusalDelta,
    StepEnded,
    StepStarted,
    TextDelta,
    ToolCallStarted,
    ToolInputDelta,
    ToolOutput,
)
from assistd.engine.tools.base import ToolCall
from assistd.engine.tools.code_interpreter import code_of
from assistd.messages.service import to_wire as message_to_wire
from assistd.models import Run
from assistd.runs import wire

WireEvent = tuple[str, dict[str, Any]]


class Face(Protocol):
    """Renders a run's events and tool calls in one API's shape."""

    def render(self, event: EngineEvent) -> list[WireEvent]:
        """The stream events announcing ``event``."""

    def tool_call(self, call: ToolCall) -> dict[str, Any]:
        """``call`` as its step stores it."""


class AssistantsFace:
    """The Assistants API: ``thread.run.step.delta`` and friends, run step objects
    (``include``: the run's, which decides what steps show)."""

    def __init__(self, include: list[str] | None = None) -> None:
        self.include = include or []

    def render(self, event: EngineEvent) -> list[WireEvent]:
        """The stream events announcing ``event``."""
        match event:
            case TextDelta():
                part = {"index": event.index, **wire.text_part(event.text)}
                return [("thread.message.delta", wire.message_delta(event.message_id, [part]))]
            case RefusalDelta():
                part = {"index": event.index, **wire.refusal_part(event.refusal)}
                return [("thread.message.delta", wire.message_delta(event.message_id, [part]))]
            case ImagesShown():
                parts = [{"index": i, **wire.image_part(f)} for i, f in enumerate(event.file_ids)]
                return [("thread.message.delta", wire.message_delta(event.message_id, parts))]
            case StepStarted():
                data = wire.step_data(event.step, self.include)
                return [("thread.run.step.created", data), ("thread.run.step.in_progress", data)]
            case StepEnded():
                data = wire.step_data(event.step, self.include)
                return [(f"thread.run.step.{event.step.status}", data)]
            case MessageStarted():
                data = message_to_wire(event.message).model_dump(mode="json")
                return [("thread.message.created", data), ("thread.message.in_progress", data)]
            case MessageEnded():
                data = message_to_wire(event.message).model_dump(mode="json")
                return [(f"thread.message.{event.message.status}", data)]
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


def face_for(run: Run) -> Face:
    """The face of the API ``run`` was created through (the Assistants API, for now)."""
    return AssistantsFace(list(run.include or []))
