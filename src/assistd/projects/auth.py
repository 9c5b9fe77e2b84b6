"""Bearer-key authentication: every ``/v1`` request resolves to a project."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.errors import AuthenticationError
from assistd.projects import service


class KeyCache:
    """Remembers key → project for a few seconds so most requests skip the lookup.

    A revoked key is forgotten at once: revocation notifies every API process
    (``core.channels.KEYS_CHANNEL``); ``ttl`` bounds a revoked key's life only when that
    notification is lost, and the cache is emptied whenever listening (re)starts.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[str, float]] = {}
        # Bumped by every drop: a lookup that raced a revocation must not cache its answer.
        self.generation = 0

    def get(self, digest: str) -> str | None:
        """The cached project id, if still fresh."""
        entry = self._entries.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, digest: str, project_id: str, generation: int) -> None:
        """Remember a successful lookup made when the cache was at ``generation``."""
        if generation != self.generation or self.ttl <= 0:
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (project_id, time.monotonic() + self.ttl)

    def drop(self, digest: str) -> None:
        """Forget one key (it was revoked)."""
        self.generation += 1
        self._entries.pop(digest, None)

    def clear(self) -> None:
        """Forget every key (revocations may have been missed)."""
        self.generation += 1
        self._entries.clear()


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Azure OpenAI clients send the key in an ``api-key`` header instead.
    api_key = request.headers.get("api-key", "").strip()
    if api_key and not header:
        return api_key
    raise AuthenticationError(
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
        "or in an 'api-key' header.",
        code="missing_api_key",
    )


async def require_project(request: Request) -> str:
    """Resolve the bearer key to its project id (401 when missing or wrong)."""
    # The request middleware resolved it already, before the body was read.
    known: str | None = getattr(request.state, "project_id", None)
    if known is not None:
        return known
    raw = _bearer(request)
    cache: KeyCache = request.app.state.key_cache
    digest = service.hash_key(raw)
    project_id = cache.get(digest)
    if project_id is None:
        generation = cache.generation
        # A single SELECT: the autocommit read sessions spare it a BEGIN and a ROLLBACK.
        maker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
        async with maker() as session:
            project_id = await service.project_for_digest(session, digest)
        if project_id is None:
            hint = raw[:8] + "*" * 4 + raw[-4:] if len(raw) > 12 else "*" * 4
            raise AuthenticationError(
                f"Incorrect API key provided: {hint}.", code="invalid_api_key"
            )
        cache.put(digest, project_id, generation)
    request.state.project_id = project_id
    return project_id


ProjectDep = Annotated[str, Depends(require_project)]
"""The caller's project id; every query is scoped by it."""
