"""Run and run-step wire types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistd.assistants.schemas import (
    ReasoningEffort,
    ResponseFormat,
    Tool,
    ToolResources,
)
from assistd.core.schemas import Metadata, RequestModel, WireModel
from assistd.messages.schemas import MessageCreate
from assistd.threads.schemas import ThreadCreate

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


INT32_MAX = 2**31 - 1
"""Token caps and counts are stored in 32-bit columns."""


class TruncationStrategy(RequestModel):
    """How the thread is cut to fit the context window."""

    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None


class NamedFunction(RequestModel):
    """``{"name": "f"}``."""

    name: str


class ToolChoiceFunction(RequestModel):
    """Force one function."""

    type: Literal["function"]
    function: NamedFunction


class ToolChoiceBuiltin(RequestModel):
    """Force a built-in tool."""

    type: Literal["file_search", "code_interpreter"]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[ToolChoiceFunction | ToolChoiceBuiltin, Field(discriminator="type")]
)

TokenCap = Annotated[int, Field(ge=256, le=INT32_MAX)]

Instructions = Annotated[str, Field(max_length=256_000)]
"""An assistant's limit, for a run's instructions and its additional instructions too."""

MAX_TOOL_OUTPUT_CHARS = 1_048_576
"""The API reference sets no limit on a tool output; a generous one bounds what one request
can add to the prompt."""


class _RunOptions(RequestModel):
    """Fields shared by create-run and create-thread-and-run."""

    assistant_id: str
    model: str | None = None
    instructions: Instructions | None = None
    tools: Annotated[list[Tool], Field(max_length=20)] | None = None
    metadata: Metadata = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stream: bool | None = None
    max_prompt_tokens: TokenCap | None = None
    max_completion_tokens: TokenCap | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class RunCreate(_RunOptions):
    """Body of ``POST /threads/{id}/runs``."""

    reasoning_effort: ReasoningEffort | None = None
    additional_instructions: Instructions | None = None
    additional_messages: list[MessageCreate] | None = None


class ThreadAndRunCreate(_RunOptions):
    """Body of ``POST /threads/runs``."""

    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunModify(RequestModel):
    """Body of ``POST /threads/{id}/runs/{id}``."""

    metadata: Metadata = None


class ToolOutput(RequestModel):
    """One function result."""

    tool_call_id: str | None = None
    output: Annotated[str, Field(max_length=MAX_TOOL_OUTPUT_CHARS)] | None = None


class SubmitToolOutputs(RequestModel):
    """Body of ``POST …/submit_tool_outputs``."""

    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class RunObject(WireModel):
    """``object: "thread.run"``."""

    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    assistant_id: str
    thread_id: str
    status: str
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    usage: dict[str, Any] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any]
    tool_choice: Any
    parallel_tool_calls: bool
    response_format: Any


class RunStepObject(WireModel):
    """``object: "thread.run.step"``."""

    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    assistant_id: str
    thread_id: str
    type: str
    status: str
    cancelled_at: int | None
    completed_at: int | None
    expired_at: int | None
    failed_at: int | None
    last_error: dict[str, Any] | None
    step_details: dict[str, Any]
    usage: dict[str, Any] | None
    metadata: dict[str, str]
