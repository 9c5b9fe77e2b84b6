"""The interface between the turn loop and a tool, and the call they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from assistd.engine import prompt
from assistd.engine.deps import EngineDeps
from assistd.engine.events import Emit
from assistd.vector_stores.search import Hit


@dataclass
class ToolCall:
    """One call the model made in a turn, and what running it produced."""

    id: str
    name: str
    step_id: str
    index: int = 0
    arguments: str = ""
    kind: str = "function"
    """``function`` (the client runs it) or the built-in tool we run."""
    streamed: int = 0
    """Characters of input already sent as deltas."""
    queries: list[str] = field(default_factory=list)
    ranker: str = ""
    score_threshold: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    logs: str | None = None
    """Logs shown to the user (None: not shown)."""
    images: list[str] = field(default_factory=list)
    """File ids of the images the call showed."""
    model_output: str = ""
    """What the model sees of the call's result."""
    files: dict[str, str] = field(default_factory=dict)
    """/mnt/data path → file id of what the code wrote."""


@dataclass
class ToolContext:
    """What running a turn's calls needs from the run."""

    deps: EngineDeps
    run: prompt.RunContext
    project_id: str
    thread_id: str
    emit: Emit
    container_id: str | None = None
    """The container code runs in (a response's); None: the thread's own sandbox."""


class Tool(Protocol):
    """A kind of tool call: how it streams while the model writes it."""

    kind: str

    def started(self, call: ToolCall, emit: Emit) -> None:
        """Announce a call the model began (``call.arguments``: what it wrote so far)."""

    def grew(self, call: ToolCall, piece: str, emit: Emit) -> None:
        """The model wrote ``piece`` more of the call's arguments (already appended)."""


class ServerTool(Tool, Protocol):
    """A built-in tool the server runs (a function call is run by the client instead)."""

    async def run(self, calls: list[ToolCall], ctx: ToolContext) -> None:
        """Run this turn's calls of this tool in order, filling in their results; one
        batch per turn, so setup shared by the calls (an ingestion wait) happens once."""
