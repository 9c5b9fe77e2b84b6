"""The models a client may name: the routes of the models file, the models the default
backend serves (asked of it, remembered for a minute) and the embedding models."""

from __future__ import annotations

import asyncio
import logging
import time

import openai

from assistd.catalog.schemas import ModelObject
from assistd.chat.service import model_not_found
from assistd.llm.chat import BackendRouter

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
LIST_TIMEOUT = 5.0
"""A backend slow to list its models delays ``/models`` no longer than this."""


class Catalog:
    """The model list, with the default backend's part cached."""

    def __init__(self, backends: BackendRouter, embedding_models: list[str]) -> None:
        self._backends = backends
        self._embedding_models = embedding_models
        self._created = int(time.time())
        self._served: list[ModelObject] = []
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def _default_models(self) -> list[ModelObject]:
        """What the default backend lists (an OpenAI-compatible one); nothing if it fails."""
        client = self._backends.default_client()
        if client is None:
            return []
        async with self._lock:
            if time.monotonic() < self._fresh_until:
                return self._served
            try:
                page = await client.get(
                    "/models", cast_to=object, options={"timeout": LIST_TIMEOUT, "max_retries": 0}
                )
                rows = page.get("data") if isinstance(page, dict) else None
                self._served = [
                    ModelObject(
                        id=str(row["id"]),
                        created=int(row.get("created") or self._created),
                        owned_by=str(row.get("owned_by") or self._backends.default or "backend"),
                    )
                    for row in rows or []
                    if isinstance(row, dict) and row.get("id")
                ]
            except (openai.APIError, ValueError, TypeError) as exc:
                log.warning("the default model backend did not list its models: %s", exc)
            self._fresh_until = time.monotonic() + CACHE_SECONDS
            return self._served

    async def models(self) -> list[ModelObject]:
        """Every model, each id once: routes first, then the default backend's, then the
        embedding models."""
        out: dict[str, ModelObject] = {}
        for name, model_route in self._backends.routes.items():
            out[name] = ModelObject(id=name, created=self._created, owned_by=model_route.backend)
        for model in await self._default_models():
            out.setdefault(model.id, model)
        for name in self._embedding_models:
            out.setdefault(name, ModelObject(id=name, created=self._created, owned_by="assistd"))
        return list(out.values())

    async def get(self, model_id: str) -> ModelObject:
        """One listed model, or 404."""
        for model in await self.models():
            if model.id == model_id:
                return model
        raise model_not_found(model_id)
