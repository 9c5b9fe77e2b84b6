"""File wire types."""

from __future__ import annotations

from typing import Literal

from assistd.core.schemas import WireModel

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class FileObject(WireModel):
    """``object: "file"``."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: str
    status_details: str | None


class FileDeleted(WireModel):
    """Files answer deletion with ``object: "file"``."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
