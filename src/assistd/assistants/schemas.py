"""Assistant wire types, plus the tool, tool_resources and response_format shapes that
threads and runs share."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistd.core.schemas import Metadata, RequestModel, WireModel
from assistd.vector_stores.schemas import VectorStoreHelper

# ---- tools ---------------------------------------------------------------------------------


class CodeInterpreterTool(RequestModel):
    """``{"type": "code_interpreter"}``."""

    type: Literal["code_interpreter"]


class RankingOptions(RequestModel):
    """Ranking options of the file_search tool (assistant vocabulary)."""

    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)]


class FileSearchSettings(RequestModel):
    """Optional settings of the file_search tool."""

    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: RankingOptions | None = None


class FileSearchTool(RequestModel):
    """``{"type": "file_search", "file_search": {...}}``."""

    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class FunctionDefinition(RequestModel):
    """A function the model may call."""

    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(RequestModel):
    """``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    function: FunctionDefinition


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


def tool_to_wire(tool: CodeInterpreterTool | FileSearchTool | FunctionTool) -> dict[str, Any]:
    """The stored and echoed form of a tool, defaults filled in as OpenAI showed them."""
    if isinstance(tool, FunctionTool):
        fn: dict[str, Any] = {"name": tool.function.name}
        if tool.function.description is not None:
            fn["description"] = tool.function.description
        if tool.function.parameters is not None:
            fn["parameters"] = tool.function.parameters
        fn["strict"] = bool(tool.function.strict)
        return {"type": "function", "function": fn}
    if isinstance(tool, FileSearchTool):
        settings = tool.file_search or FileSearchSettings()
        ranking = settings.ranking_options
        fs: dict[str, Any] = {
            "ranking_options": {
                "ranker": "default_2024_08_21"
                if ranking is None or ranking.ranker == "auto"
                else ranking.ranker,
                "score_threshold": ranking.score_threshold if ranking else 0.0,
            }
        }
        if settings.max_num_results is not None:
            fs["max_num_results"] = settings.max_num_results
        return {"type": "file_search", "file_search": fs}
    return {"type": "code_interpreter"}


# ---- tool resources ------------------------------------------------------------------------

FileIds20 = Annotated[list[str], Field(max_length=20)]


class CodeInterpreterResources(RequestModel):
    """Files made available to code_interpreter."""

    file_ids: FileIds20 | None = None


class FileSearchResources(RequestModel):
    """Vector stores searched by file_search (create: ids or the helper)."""

    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None
    vector_stores: Annotated[list[VectorStoreHelper], Field(max_length=1)] | None = None


class ModifyFileSearchResources(RequestModel):
    """Vector stores searched by file_search (modify: ids only)."""

    vector_store_ids: Annotated[list[str], Field(max_length=1)] | None = None


class ToolResources(RequestModel):
    """``tool_resources`` on create."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class ModifyToolResources(RequestModel):
    """``tool_resources`` on modify: the given lists replace the stored ones."""

    code_interpreter: CodeInterpreterResources | None = None
    file_search: ModifyFileSearchResources | None = None


# ---- response_format -----------------------------------------------------------------------


class ResponseFormatText(RequestModel):
    """Plain text output."""

    type: Literal["text"]


class ResponseFormatJsonObject(RequestModel):
    """JSON mode."""

    type: Literal["json_object"]


class JsonSchemaSpec(RequestModel):
    """Structured outputs: the schema the model must follow."""

    name: Annotated[str, Field(max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJsonSchema(RequestModel):
    """``{"type": "json_schema", "json_schema": {...}}``."""

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
        Field(discriminator="type"),
    ]
)


def response_format_to_wire(value: ResponseFormat | None) -> Any:
    """The stored and echoed form of ``response_format``."""
    if value is None or value == "auto":
        return "auto"
    assert not isinstance(value, str)
    return value.model_dump(by_alias=True, exclude_none=True)


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]

# ---- assistants ----------------------------------------------------------------------------


class AssistantCreate(RequestModel):
    """Body of ``POST /assistants``."""

    model: str
    name: Annotated[str, Field(max_length=256)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    instructions: Annotated[str, Field(max_length=256_000)] | None = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    response_format: ResponseFormat | None = None


class AssistantModify(RequestModel):
    """Body of ``POST /assistants/{id}``; omitted fields stay as they are."""

    model: str | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    instructions: Annotated[str, Field(max_length=256_000)] | None = None
    reasoning_effort: ReasoningEffort | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_resources: ModifyToolResources | None = None
    metadata: Metadata = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    response_format: ResponseFormat | None = None


class AssistantObject(WireModel):
    """``object: "assistant"``."""

    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any]
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any
