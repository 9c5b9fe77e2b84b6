"""Conversation wire types: the Responses API's input items, as the SDK names them.

Items are a union tagged on ``type``; a message may leave ``type`` out (the SDK's
``EasyInputMessageParam``), so a missing tag beside a ``role`` means ``message``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from assistd.core.schemas import Metadata, RequestModel, WireModel

MAX_ITEMS_PER_REQUEST = 20
MAX_TEXT = 10 * 1024 * 1024
"""OpenAI's bound on one input string (10 MiB of characters)."""

INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)

Text = Annotated[str, Field(max_length=MAX_TEXT)]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputText(RequestModel):
    """``input_text`` content."""

    type: Literal["input_text"]
    text: Text
    prompt_cache_breakpoint: dict[str, Any] | None = None


class InputImage(RequestModel):
    """``input_image`` content: by URL (or data URL) or by file id."""

    type: Literal["input_image"]
    detail: Literal["low", "high", "auto", "original"] = "auto"
    file_id: str | None = None
    image_url: Text | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> InputImage:
        if (self.file_id is None) == (self.image_url is None):
            raise ValueError("exactly one of 'file_id' and 'image_url' must be given.")
        return self


class InputFile(RequestModel):
    """``input_file`` content: by file id, inline data or URL."""

    type: Literal["input_file"]
    detail: Literal["auto", "low", "high"] | None = None
    file_data: Text | None = None
    file_id: str | None = None
    file_url: Text | None = None
    filename: Annotated[str, Field(max_length=1024)] | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> InputFile:
        given = [x for x in (self.file_data, self.file_id, self.file_url) if x is not None]
        if len(given) != 1:
            raise ValueError("exactly one of 'file_id', 'file_data' and 'file_url' must be given.")
        return self


class OutputText(RequestModel):
    """``output_text`` content of an assistant message."""

    type: Literal["output_text"]
    text: Text
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None


class Refusal(RequestModel):
    """``refusal`` content of an assistant message."""

    type: Literal["refusal"]
    refusal: Text


ContentPart = Annotated[
    InputText | InputImage | InputFile | OutputText | Refusal, Field(discriminator="type")
]
OutputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]


class MessageItem(RequestModel):
    """A message: a string, or content parts (``input_*`` for user, system and developer,
    ``output_text``/``refusal`` for assistant)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Text | Annotated[list[ContentPart], Field(min_length=1)]
    id: str | None = None
    status: ItemStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCallItem(RequestModel):
    """A call the model made to one of the caller's functions."""

    type: Literal["function_call"]
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    arguments: Text
    id: str | None = None
    status: ItemStatus | None = None
    namespace: str | None = None


class FunctionCallOutputItem(RequestModel):
    """The caller's result of a function call."""

    type: Literal["function_call_output"]
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    output: Text | list[OutputPart]
    id: str | None = None
    status: ItemStatus | None = None


class ItemReference(RequestModel):
    """An earlier item of the project, copied in by id."""

    type: Literal["item_reference"]
    id: str


InputItem = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | ItemReference,
    Field(discriminator="type"),
]
Items = Annotated[list[InputItem], Field(max_length=MAX_ITEMS_PER_REQUEST)]


def default_message_type(data: Any) -> Any:
    """A message item may omit ``type``; fill it in so the tagged union can pick it."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return data
    items = [
        {**item, "type": "message"}
        if isinstance(item, dict) and "type" not in item and "role" in item
        else item
        for item in data["items"]
    ]
    return {**data, "items": items}


class ConversationCreate(RequestModel):
    """Body of ``POST /conversations`` (every field optional). ``from_thread`` (an assistd
    extension, sent with the SDK's ``extra_body``) moves an Assistants thread's messages in
    first; ``items`` follow them and ``metadata``, when given, replaces the thread's."""

    items: Items | None = None
    metadata: Metadata = None
    from_thread: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data: Any) -> Any:
        return default_message_type(data)


class ConversationUpdate(RequestModel):
    """Body of ``POST /conversations/{id}``."""

    metadata: Metadata


class ItemsCreate(RequestModel):
    """Body of ``POST /conversations/{id}/items``."""

    items: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]

    @model_validator(mode="before")
    @classmethod
    def _message_type(cls, data: Any) -> Any:
        return default_message_type(data)


class ConversationObject(WireModel):
    """``object: "conversation"``."""

    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str]


class CodeInterpreterFiles(WireModel):
    """Files for a ``code_interpreter`` tool's ``container.file_ids``."""

    file_ids: list[str]


class FileSearchStores(WireModel):
    """Stores for a ``file_search`` tool's ``vector_store_ids``."""

    vector_store_ids: list[str]


class ThreadResources(WireModel):
    """What a moved thread's runs used, in the thread's ``tool_resources`` shape."""

    code_interpreter: CodeInterpreterFiles
    file_search: FileSearchStores


class MovedConversation(ConversationObject):
    """A conversation made ``from_thread``: the conversation, and the thread's files and
    stores, which a response names in its tools (a conversation holds no tool resources)."""

    tool_resources: ThreadResources


class ItemList(WireModel):
    """A page of items (each in its stored wire shape)."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
