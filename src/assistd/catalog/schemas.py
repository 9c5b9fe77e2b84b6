"""Model wire types (the SDK's ``Model``)."""

from __future__ import annotations

from typing import Literal

from assistd.core.schemas import WireModel


class ModelObject(WireModel):
    """``object: "model"``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(WireModel):
    """``object: "list"`` of models (not paginated, as OpenAI's)."""

    object: Literal["list"] = "list"
    data: list[ModelObject]
