"""Function calls: streamed as the model writes them, run by the client."""

from __future__ import annotations

from assistd.engine.events import ArgumentsDelta, Emit, ToolCallStarted
from assistd.engine.tools.base import ToolCall


class FunctionTool:
    """The client's functions: the run stops at ``requires_action`` to have them run."""

    kind = "function"

    def started(self, call: ToolCall, emit: Emit) -> None:
        """Announce the call with its name and the arguments written so far."""
        emit(
            ToolCallStarted(call.step_id, call.index, call.id, self.kind, call.name, call.arguments)
        )

    def grew(self, call: ToolCall, piece: str, emit: Emit) -> None:
        """Stream the arguments as the model writes them."""
        emit(ArgumentsDelta(call.step_id, call.index, piece))


FUNCTION = FunctionTool()
