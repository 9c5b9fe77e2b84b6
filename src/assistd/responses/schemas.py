"""Responses wire types: the create request and its tools, as the SDK sends them.

Tools arrive as plain objects and are checked one by one (``parse_tools``), so a tool type
this server does not run is answered with a 400 naming it rather than a union error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from assistd.conversations.schemas import MAX_TEXT, InputItem, default_message_type
from assistd.core.errors import InvalidRequestError
from assistd.core.schemas import Metadata, RequestModel
from assistd.vector_stores.schemas import ComparisonFilter, CompoundFilter

UNSUPPORTED_TOOLS = (
    "web_search",
    "web_search_preview",
    "image_generation",
    "mcp",
    "computer_use_preview",
    "computer",
    "shell",
    "local_shell",
    "apply_patch",
    "custom",
    "tool_search",
)


class FunctionTool(RequestModel):
    """A function the client runs (the Responses API's flat shape)."""

    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class RankingOptions(RequestModel):
    """How file_search ranks its results."""

    ranker: Literal["auto", "default-2024-11-15", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0
    hybrid_search: dict[str, Any] | None = None


class FileSearchTool(RequestModel):
    """Search the given vector stores."""

    type: Literal["file_search"]
    vector_store_ids: Annotated[list[str], Field(min_length=1, max_length=2)]
    filters: ComparisonFilter | CompoundFilter | None = None
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: RankingOptions | None = None


class AutoContainer(RequestModel):
    """A container made for the response (``container: {"type": "auto"}``)."""

    type: Literal["auto"]
    file_ids: Annotated[list[str], Field(max_length=50)] | None = None
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    network_policy: dict[str, Any] | None = None


class CodeInterpreterTool(RequestModel):
    """Run Python in a container: a new one (``auto``) or an existing one by id."""

    type: Literal["code_interpreter"]
    container: str | AutoContainer


Tool = FunctionTool | FileSearchTool | CodeInterpreterTool
_TOOL_MODELS: dict[str, type[BaseModel]] = {
    "function": FunctionTool,
    "file_search": FileSearchTool,
    "code_interpreter": CodeInterpreterTool,
}


def parse_tools(raw: list[dict[str, Any]]) -> list[Tool]:
    """The request's tools, each checked against its type's shape."""
    tools: list[Tool] = []
    for i, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, dict) else None
        model = _TOOL_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            known = kind in UNSUPPORTED_TOOLS or isinstance(kind, str)
            message = (
                f"The tool type '{kind}' is not supported by this server; it runs "
                "'function', 'file_search' and 'code_interpreter'."
                if known
                else "Missing required parameter: 'tools[{i}].type'."
            )
            raise InvalidRequestError(
                message.format(i=i),
                param=f"tools[{i}].type",
                code="unsupported_value" if known else "missing_required_parameter",
            )
        try:
            tools.append(model.model_validate(item))  # type: ignore[arg-type]
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise InvalidRequestError(
                f"Invalid 'tools[{i}].{where}': {error['msg']}.",
                param=f"tools[{i}].{where}",
                code="invalid_value",
            ) from None
    names = [t.name for t in tools if isinstance(t, FunctionTool)]
    for name in names:
        if names.count(name) > 1:
            raise InvalidRequestError(
                f"Duplicate function name '{name}' in 'tools'.", param="tools", code="invalid_value"
            )
    return tools


class ToolCallItem(BaseModel):
    """An output item of a built-in tool given back as input (kept as given)."""

    model_config = {"extra": "allow"}
    type: Literal["file_search_call", "code_interpreter_call", "reasoning", "compaction"]
    id: str | None = None


ResponseInputItem = Annotated[InputItem | ToolCallItem, Field(discriminator="type")]


class TextFormat(RequestModel):
    """``text.format``: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_needs_name(self) -> TextFormat:
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError("'json_schema' format needs a 'name' and a 'schema'.")
        return self


class TextConfig(RequestModel):
    """``text``: its format and verbosity."""

    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(RequestModel):
    """``reasoning``: passed to the backend as the reasoning effort."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ConversationRef(RequestModel):
    """``conversation: {"id": ...}``."""

    id: str


class ResponseCreate(RequestModel):
    """Body of ``POST /responses``."""

    model: str
    input: Annotated[str, Field(max_length=MAX_TEXT)] | list[ResponseInputItem] | None = None
    instructions: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Field(ge=16, le=2**31 - 1)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = None
    metadata: Metadata = None
    user: str | None = None
    safety_identifier: Annotated[str, Field(max_length=64)] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    include: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("input"), list):
            return {**data, "input": default_message_type({"items": data["input"]})["items"]}
        return data


class InputTokensRequest(RequestModel):
    """Body of ``POST /responses/input_tokens``: what a create would send, counted."""

    model: str | None = None
    input: Annotated[str, Field(max_length=MAX_TEXT)] | list[ResponseInputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data: Any) -> Any:
        return ResponseCreate._message_type(data)  # type: ignore[operator]


class CompactRequest(RequestModel):
    """Body of ``POST /responses/compact``: the context to compact."""

    model: str
    input: Annotated[str, Field(max_length=MAX_TEXT)] | list[ResponseInputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data: Any) -> Any:
        return ResponseCreate._message_type(data)  # type: ignore[operator]
