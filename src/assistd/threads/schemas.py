"""Thread wire types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistd.assistants.schemas import ModifyToolResources, ToolResources
from assistd.core.schemas import Metadata, RequestModel, WireModel
from assistd.messages.schemas import MessageCreate


class ThreadCreate(RequestModel):
    """Body of ``POST /threads`` (optional: the SDK sends ``{}``)."""

    messages: Annotated[list[MessageCreate], Field(max_length=32)] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class ThreadModify(RequestModel):
    """Body of ``POST /threads/{id}``."""

    tool_resources: ModifyToolResources | None = None
    metadata: Metadata = None


class ThreadObject(WireModel):
    """``object: "thread"``."""

    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: dict[str, str]
    tool_resources: dict[str, Any]
