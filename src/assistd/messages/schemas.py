"""Message wire types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistd.core.schemas import Metadata, RequestModel, WireModel

Detail = Literal["auto", "low", "high"]

MAX_TEXT_CHARS = 256_000
"""OpenAI's limit on a message's text (a string content, or each text part)."""

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class TextPart(RequestModel):
    """``{"type": "text", "text": "..."}`` (a plain string in requests)."""

    type: Literal["text"]
    text: Text


class ImageFileRef(RequestModel):
    """An uploaded image."""

    file_id: str
    detail: Detail | None = None


class ImageFilePart(RequestModel):
    """``{"type": "image_file", "image_file": {...}}``."""

    type: Literal["image_file"]
    image_file: ImageFileRef


class ImageUrlRef(RequestModel):
    """An image by URL (http(s) or a data URL)."""

    url: str
    detail: Detail | None = None


class ImageUrlPart(RequestModel):
    """``{"type": "image_url", "image_url": {...}}``."""

    type: Literal["image_url"]
    image_url: ImageUrlRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageUrlPart, Field(discriminator="type")]


class AttachmentTool(RequestModel):
    """A tool an attachment is made available to."""

    type: Literal["code_interpreter", "file_search"]


class Attachment(RequestModel):
    """A file attached to a message, and the tools that may use it."""

    file_id: str
    tools: list[AttachmentTool] | None = None


class MessageCreate(RequestModel):
    """Body of ``POST /threads/{id}/messages`` (and items of ``thread.messages``)."""

    role: Literal["user", "assistant"]
    content: Text | Annotated[list[ContentPart], Field(min_length=1)]
    attachments: list[Attachment] | None = None
    metadata: Metadata = None


class MessageModify(RequestModel):
    """Body of ``POST /threads/{id}/messages/{id}``."""

    metadata: Metadata = None


class MessageObject(WireModel):
    """``object: "thread.message"``."""

    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: str
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: str
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, str]
