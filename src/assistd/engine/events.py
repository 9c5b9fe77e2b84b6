"""The engine's own events: what a turn produced, in no API's shape.

The turn loop and the tools emit these; a face (``engine.face``) renders each as the stream
events of the API the run was created through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistd.models import Message, RunStep


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


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More of a message's text (``index``: its part's position in the message)."""

    message_id: str
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """More of a message's refusal."""

    message_id: str
    index: int
    refusal: str


@dataclass(frozen=True, slots=True)
class ImagesShown:
    """Images a message shows: before its text (plots code_interpreter made), or from
    content index ``first`` on (images the code wrote that the text links)."""

    message_id: str
    file_ids: tuple[str, ...]
    first: int = 0


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """More of the reasoning the model sent before its answer (``item_id``: this turn's)."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningEnded:
    """The turn's reasoning is complete."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step began (a message to write, or tool calls)."""

    step: RunStep


@dataclass(frozen=True, slots=True)
class StepEnded:
    """A step reached its final status."""

    step: RunStep


@dataclass(frozen=True, slots=True)
class MessageStarted:
    """The model began a message."""

    message: Message


@dataclass(frozen=True, slots=True)
class MessageEnded:
    """A message was completed or cut (its status says which)."""

    message: Message


EngineEvent = (
    ToolCallStarted
    | ArgumentsDelta
    | ToolInputDelta
    | ToolOutput
    | TextDelta
    | RefusalDelta
    | ImagesShown
    | ReasoningDelta
    | ReasoningEnded
    | StepStarted
    | StepEnded
    | MessageStarted
    | MessageEnded
)
Emit = Callable[[EngineEvent], None]
