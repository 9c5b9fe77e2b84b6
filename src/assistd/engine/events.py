"""The engine's own events: what a turn produced, in no API's shape.

The turn loop and the tools emit these; a face (``engine.face``) renders each as the stream
events of the API the run was created through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model began a tool call (``arguments``: the part of them already written)."""

    step_id: str
    index: int
    call_id: str
    kind: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ArgumentsDelta:
    """More of a function call's arguments."""

    step_id: str
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    """More of a built-in tool's input as the model writes it (code_interpreter's code)."""

    step_id: str
    index: int
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A built-in call's output: its logs (if shown) and the images it showed."""

    step_id: str
    index: int
    kind: str
    logs: str | None
    images: tuple[str, ...]


EngineEvent = ToolCallStarted | ArgumentsDelta | ToolInputDelta | ToolOutput
Emit = Callable[[EngineEvent], None]
