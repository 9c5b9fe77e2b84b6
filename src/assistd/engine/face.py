"""Faces: an API's rendering of the engine's events and tool calls.

The turn loop and the tools know no wire shape; the run's face turns what they produce into
the stream events and stored objects of the API the run belongs to.
"""

from __future__ import annotations

from typing import Any, Protocol

from assistd.core import ids
from assistd.engine.events import (
    ArgumentsDelta,
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
    ToolCallStarted,
    ToolInputDelta,
    ToolOutput,
)
from assistd.engine.tools.base import ToolCall
from assistd.engine.tools.code_interpreter import code_of
from assistd.messages.service import to_wire as message_to_wire
from assistd.models import Message, Run, RunStep, StoredResponse
from assistd.responses import items
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
            case ReasoningDelta() | ReasoningEnded():
                return []  # the Assistants API shows no reasoning
            case TextDelta():
                part = {"index": event.index, **wire.text_part(event.text)}
                return [("thread.message.delta", wire.message_delta(event.message_id, [part]))]
            case RefusalDelta():
                part = {"index": event.index, **wire.refusal_part(event.refusal)}
                return [("thread.message.delta", wire.message_delta(event.message_id, [part]))]
            case ImagesShown():
                parts = [
                    {"index": i, **wire.image_part(f)}
                    for i, f in enumerate(event.file_ids, event.first)
                ]
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


class ResponsesFace:
    """The Responses API: ``response.output_item.*`` and friends, without sequence numbers
    (a stream numbers what it sends); steps are stored as the Assistants API's."""

    def __init__(self, response: StoredResponse) -> None:
        self.container_id = response.container_id
        self.include = list(response.params.get("include") or [])
        self._next = 0
        self._slots: dict[str, tuple[int, str]] = {}
        """Message id or call id → (output index, item id)."""
        self._calls: dict[tuple[str, int], str] = {}
        """(step id, call index) → call id."""
        self._parts: dict[str, dict[str, int]] = {}
        """Message id → content index of its text and refusal parts."""
        self._code: dict[str, str] = {}

    def _slot(self, key: str, item_id: str) -> tuple[int, str]:
        if key not in self._slots:
            self._slots[key] = (self._next, item_id)
            self._next += 1
        return self._slots[key]

    def _where(self, key: str) -> dict[str, Any]:
        index, item_id = self._slots[key]
        return {"item_id": item_id, "output_index": index}

    def _part(self, message_id: str, kind: str, empty: dict[str, Any]) -> list[WireEvent]:
        parts = self._parts.setdefault(message_id, {})
        if kind in parts:
            return []
        parts[kind] = len(parts)
        body = {**self._where(message_id), "content_index": parts[kind], "part": empty}
        return [("response.content_part.added", body)]

    def render(self, event: EngineEvent) -> list[WireEvent]:
        """The stream events announcing ``event``."""
        match event:
            case MessageStarted():
                message = event.message
                index, _ = self._slot(message.id, message.id)
                item = items.message_item(message.id, "in_progress", [], self.container_id)
                return [("response.output_item.added", {"output_index": index, "item": item})]
            case TextDelta():
                empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out = self._part(event.message_id, "text", empty)
                index = self._parts[event.message_id]["text"]
                body = {**self._where(event.message_id), "content_index": index}
                out.append(
                    ("response.output_text.delta", {**body, "delta": event.text, "logprobs": []})
                )
                return out
            case RefusalDelta():
                out = self._part(event.message_id, "refusal", {"type": "refusal", "refusal": ""})
                index = self._parts[event.message_id]["refusal"]
                body = {**self._where(event.message_id), "content_index": index}
                out.append(("response.refusal.delta", {**body, "delta": event.refusal}))
                return out
            case MessageEnded():
                return self._message_done(event.message)
            case ReasoningDelta():
                return self._reasoning(event)
            case ReasoningEnded():
                return self._reasoning_done(event)
            case ToolCallStarted():
                return self._call_started(event)
            case ArgumentsDelta():
                call_id = self._calls[(event.step_id, event.index)]
                body = {**self._where(call_id), "delta": event.arguments}
                return [("response.function_call_arguments.delta", body)]
            case ToolInputDelta():
                call_id = self._calls[(event.step_id, event.index)]
                self._code[call_id] = self._code.get(call_id, "") + event.text
                body = {**self._where(call_id), "delta": event.text}
                return [("response.code_interpreter_call_code.delta", body)]
            case ToolOutput():
                call_id = self._calls[(event.step_id, event.index)]
                where = self._where(call_id)
                return [
                    (
                        "response.code_interpreter_call_code.done",
                        {**where, "code": self._code.get(call_id, "")},
                    ),
                    ("response.code_interpreter_call.interpreting", where),
                    ("response.code_interpreter_call.completed", where),
                ]
            case StepEnded():
                return self._calls_done(event.step)
        return []  # steps starting, images shown: nothing in this API

    def _reasoning(self, event: ReasoningDelta) -> list[WireEvent]:
        out: list[WireEvent] = []
        if event.item_id not in self._slots:
            index, _ = self._slot(event.item_id, event.item_id)
            item = {"id": event.item_id, "type": "reasoning", "summary": []}
            out.append(("response.output_item.added", {"output_index": index, "item": item}))
            part = {"type": "summary_text", "text": ""}
            body = {**self._where(event.item_id), "summary_index": 0, "part": part}
            out.append(("response.reasoning_summary_part.added", body))
        body = {**self._where(event.item_id), "summary_index": 0, "delta": event.text}
        out.append(("response.reasoning_summary_text.delta", body))
        return out

    def _reasoning_done(self, event: ReasoningEnded) -> list[WireEvent]:
        where = {**self._where(event.item_id), "summary_index": 0}
        part = {"type": "summary_text", "text": event.text}
        item = {"id": event.item_id, "type": "reasoning", "summary": [part]}
        return [
            ("response.reasoning_summary_text.done", {**where, "text": event.text}),
            ("response.reasoning_summary_part.done", {**where, "part": part}),
            (
                "response.output_item.done",
                {"output_index": where["output_index"], "item": item},
            ),
        ]

    def _message_done(self, message: Message) -> list[WireEvent]:
        if message.id not in self._slots:
            return []
        where = self._where(message.id)
        item = items.message_item(message.id, message.status, message.content, self.container_id)
        parts = self._parts.get(message.id, {})
        out: list[WireEvent] = []
        for part in item["content"]:
            kind = "text" if part["type"] == "output_text" else "refusal"
            if kind not in parts:
                continue
            body = {**where, "content_index": parts[kind]}
            if kind == "text":
                for n, note in enumerate(part["annotations"]):
                    out.append(
                        (
                            "response.output_text.annotation.added",
                            {**body, "annotation_index": n, "annotation": note},
                        )
                    )
                done = {**body, "text": part["text"], "logprobs": []}
                out.append(("response.output_text.done", done))
            else:
                out.append(("response.refusal.done", {**body, "refusal": part["refusal"]}))
            out.append(("response.content_part.done", {**body, "part": part}))
        index = where["output_index"]
        out.append(("response.output_item.done", {"output_index": index, "item": item}))
        return out

    def _call_started(self, event: ToolCallStarted) -> list[WireEvent]:
        self._calls[(event.step_id, event.index)] = event.call_id
        if event.kind == "code_interpreter":
            item_id = items.item_id(ids.CODE_INTERPRETER_CALL_ITEM, event.call_id)
            item: dict[str, Any] = {
                "id": item_id,
                "type": "code_interpreter_call",
                "status": "in_progress",
                "code": "",
                "container_id": self.container_id or "",
                "outputs": None,
            }
            follow = ["response.code_interpreter_call.in_progress"]
        elif event.kind == "file_search":
            item_id = items.item_id(ids.FILE_SEARCH_CALL_ITEM, event.call_id)
            item = {
                "id": item_id,
                "type": "file_search_call",
                "status": "in_progress",
                "queries": [],
                "results": None,
            }
            follow = [
                "response.file_search_call.in_progress",
                "response.file_search_call.searching",
            ]
        else:
            item_id = items.item_id(ids.FUNCTION_CALL_ITEM, event.call_id)
            item = {
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "call_id": event.call_id,
                "name": event.name,
                "arguments": "",
            }
            follow = []
        index, _ = self._slot(event.call_id, item_id)
        out: list[WireEvent] = [
            ("response.output_item.added", {"output_index": index, "item": item})
        ]
        out += [(name, self._where(event.call_id)) for name in follow]
        if event.kind == "function" and event.arguments:
            body = {**self._where(event.call_id), "delta": event.arguments}
            out.append(("response.function_call_arguments.delta", body))
        return out

    def _calls_done(self, step: RunStep) -> list[WireEvent]:
        state = "completed" if step.status == "completed" else "incomplete"
        out: list[WireEvent] = []
        for call in step.step_details.get("tool_calls", []):
            if call["id"] not in self._slots:
                continue
            where = self._where(call["id"])
            item = items.public(items.call_item(call, state, self.container_id), self.include)
            if item["type"] == "function_call":
                done = {**where, "arguments": item["arguments"]}
                out.append(("response.function_call_arguments.done", done))
            elif item["type"] == "file_search_call":
                out.append(("response.file_search_call.completed", where))
            index = where["output_index"]
            out.append(("response.output_item.done", {"output_index": index, "item": item}))
        return out

    def tool_call(self, call: ToolCall) -> dict[str, Any]:
        """``call`` as its step stores it (the Assistants API's shape)."""
        return AssistantsFace().tool_call(call)


def face_for(run: Run, response: StoredResponse | None = None) -> Face:
    """The face of the API ``run`` was created through."""
    if response is not None:
        return ResponsesFace(response)
    return AssistantsFace(list(run.include or []))
