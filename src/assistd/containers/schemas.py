"""Container wire types, as the SDK names them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from assistd.core.schemas import RequestModel, WireModel

DEFAULT_EXPIRY_MINUTES = 20
"""OpenAI's default: a container expires 20 minutes after it was last active."""
MAX_EXPIRY_MINUTES = 7 * 24 * 60
MemoryLimit = Literal["1g", "4g", "16g", "64g"]


class ExpiresAfter(RequestModel):
    """Expiry relative to the last activity (the only anchor OpenAI offers)."""

    anchor: Literal["last_active_at"]
    minutes: Annotated[int, Field(ge=1, le=MAX_EXPIRY_MINUTES)]


class NetworkPolicyDisabled(RequestModel):
    """No outbound network (the only policy assistd's sandboxes have)."""

    type: Literal["disabled"]


class NetworkPolicyAllowlist(RequestModel):
    """Outbound access to listed domains (refused: sandboxes have no network)."""

    type: Literal["allowlist"]
    allowed_domains: list[str]
    domain_secrets: list[dict[str, Any]] | None = None


class ContainerCreate(RequestModel):
    """Body of ``POST /containers``."""

    name: Annotated[str, Field(min_length=1, max_length=256)]
    expires_after: ExpiresAfter | None = None
    file_ids: Annotated[list[str], Field(max_length=100)] | None = None
    memory_limit: MemoryLimit | None = None
    network_policy: (
        Annotated[NetworkPolicyDisabled | NetworkPolicyAllowlist, Field(discriminator="type")]
        | None
    ) = None
    skills: list[dict[str, Any]] | None = None


class ContainerFileCreate(RequestModel):
    """JSON body of ``POST /containers/{id}/files``: copy an uploaded file in."""

    file_id: Annotated[str, Field(min_length=1)]


class ExpiresAfterObject(WireModel):
    """``expires_after`` as answered."""

    anchor: Literal["last_active_at"] = "last_active_at"
    minutes: int


class NetworkPolicyObject(WireModel):
    """``network_policy`` as answered (always ``disabled``)."""

    type: Literal["disabled"] = "disabled"


class ContainerObject(WireModel):
    """``object: "container"``."""

    id: str
    object: Literal["container"] = "container"
    created_at: int
    name: str
    status: Literal["running", "expired"]
    expires_after: ExpiresAfterObject
    last_active_at: int
    memory_limit: MemoryLimit
    network_policy: NetworkPolicyObject = NetworkPolicyObject()


class ContainerFileObject(WireModel):
    """``object: "container.file"``."""

    id: str
    object: Literal["container.file"] = "container.file"
    bytes: int
    container_id: str
    created_at: int
    path: str
    source: str
