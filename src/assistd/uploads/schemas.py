"""Upload wire types (the SDK's ``Upload``, ``UploadPart`` and their request bodies)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from assistd.core.schemas import RequestModel, WireModel
from assistd.files.schemas import UPLOAD_PURPOSES, FileObject


class ExpiresAfter(RequestModel):
    """When the created file expires."""

    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2_592_000)]


class CreateUpload(RequestModel):
    """``POST /uploads``."""

    bytes: Annotated[int, Field(ge=1)]
    filename: Annotated[str, Field(min_length=1, max_length=1024)]
    mime_type: Annotated[str, Field(min_length=1, max_length=255)]
    purpose: str
    expires_after: ExpiresAfter | None = None

    @field_validator("purpose")
    @classmethod
    def _known_purpose(cls, value: str) -> str:
        if value not in UPLOAD_PURPOSES:
            raise PydanticCustomError(
                "literal_error",
                "Input should be one of {expected}",
                {"expected": ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)},
            )
        return value


class CompleteUpload(RequestModel):
    """``POST /uploads/{upload_id}/complete``: the parts in file order."""

    part_ids: Annotated[list[str], Field(max_length=10_000)]
    md5: str | None = None


class UploadObject(WireModel):
    """``object: "upload"``."""

    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None = None


class UploadPartObject(WireModel):
    """``object: "upload.part"``."""

    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str
