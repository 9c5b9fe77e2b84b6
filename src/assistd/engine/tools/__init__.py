"""The tools a turn can call, one module each, behind ``Tool`` (and ``ServerTool`` for the
built-in ones the server runs)."""

from __future__ import annotations

from assistd.engine import prompt
from assistd.engine.tools.base import ServerTool, Tool, ToolCall, ToolContext
from assistd.engine.tools.code_interpreter import CodeInterpreterTool
from assistd.engine.tools.file_search import FileSearchTool
from assistd.engine.tools.function import FUNCTION, FunctionTool

FILE_SEARCH = FileSearchTool()
CODE_INTERPRETER = CodeInterpreterTool()

__all__ = [
    "CODE_INTERPRETER",
    "FILE_SEARCH",
    "FUNCTION",
    "FunctionTool",
    "ServerTool",
    "Tool",
    "ToolCall",
    "ToolContext",
    "builtin_tools",
]


def builtin_tools(ctx: prompt.RunContext) -> dict[str, ServerTool]:
    """The built-in tools the run has, by the name the model calls them, in the order a
    turn runs them."""
    tools: dict[str, ServerTool] = {}
    if ctx.file_search is not None:
        tools[FILE_SEARCH.kind] = FILE_SEARCH
    if ctx.code_interpreter:
        tools[CODE_INTERPRETER.kind] = CODE_INTERPRETER
    return tools
