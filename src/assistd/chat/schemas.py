"""Chat completion request: the fields assistd reads; every other one is passed on as sent."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class ChatCompletionRequest(BaseModel):
    """``POST /chat/completions``. Unknown fields are the backend's to judge (new parameters
    reach it without a release of assistd)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    stream: bool | None = None
