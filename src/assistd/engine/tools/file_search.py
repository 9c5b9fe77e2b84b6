"""file_search: the model's queries over the run's vector stores (results feed citations)."""

from __future__ import annotations

import asyncio
import json
import time

from pydantic import TypeAdapter

from assistd.core.db import transaction
from assistd.engine import prompt
from assistd.engine.deps import EngineDeps
from assistd.engine.events import Emit, ToolCallStarted
from assistd.engine.tools.base import ToolCall, ToolContext
from assistd.vector_stores import search
from assistd.vector_stores import service as vector_store_service
from assistd.vector_stores.schemas import ComparisonFilter, CompoundFilter

FILTERS: TypeAdapter[ComparisonFilter | CompoundFilter] = TypeAdapter(
    ComparisonFilter | CompoundFilter
)
"""A response's file_search filters, as stored on its run's tool."""

INGESTION_POLL_SECONDS = 0.25
DEFAULT_RANKER = "default_2024_08_21"


def queries_of(arguments: str) -> list[str]:
    """The ``queries`` the model passed to file_search (tolerating a bare ``query``)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return []
    if not isinstance(parsed, dict):
        return []
    raw = parsed.get("queries", parsed.get("query", []))
    items = raw if isinstance(raw, list) else [raw]
    return [str(q) for q in items if str(q).strip()][:5]


def _last_user_text(ctx: prompt.RunContext) -> list[str]:
    for message in reversed(ctx.history):
        if message.role == "user":
            text = prompt.text_of(message.content)
            if text.strip():
                return [text]
    return []


async def await_ingestion(deps: EngineDeps, store_ids: list[str]) -> None:
    """Wait (bounded) for files of the stores still being ingested, so a file attached
    just before the run is searched rather than missed."""
    deadline = time.monotonic() + deps.settings.runs.file_search_wait_seconds
    while True:
        async with deps.maker() as session:
            pending = await vector_store_service.files_in_progress(session, store_ids)
        if not pending or time.monotonic() >= deadline:
            return
        await asyncio.sleep(INGESTION_POLL_SECONDS)


class FileSearchTool:
    """Searches the run's stores; its arguments are ours, so they are not streamed."""

    kind = "file_search"

    def started(self, call: ToolCall, emit: Emit) -> None:
        """Announce the call (without its arguments)."""
        emit(ToolCallStarted(call.step_id, call.index, call.id, self.kind, call.name, ""))

    def grew(self, call: ToolCall, piece: str, emit: Emit) -> None:
        """Nothing: the queries are shown with the results."""

    async def run(self, calls: list[ToolCall], ctx: ToolContext) -> None:
        """Search for each call's queries (or the last user message), best hits first."""
        run_ctx, deps = ctx.run, ctx.deps
        await await_ingestion(deps, [store_id for store_id, _, _ in run_ctx.vector_stores])
        settings = run_ctx.file_search or {}
        ranking = settings.get("ranking_options") or {}
        threshold = float(ranking.get("score_threshold", 0.0))
        filters = None
        if settings.get("filters"):
            filters = FILTERS.validate_python(settings["filters"])
        limit = settings.get("max_num_results") or (
            5 if run_ctx.run.model.startswith("gpt-3.5") else 20
        )
        groups: dict[tuple[str, int], list[str]] = {}
        for store_id, model, dimension in run_ctx.vector_stores:
            groups.setdefault((model, dimension), []).append(store_id)
        for call in calls:
            call.queries = queries_of(call.arguments) or _last_user_text(run_ctx)
            call.ranker = ranking.get("ranker", DEFAULT_RANKER)
            call.score_threshold = threshold
            hits: list[search.Hit] = []
            async with transaction(deps.maker) as session:
                for (model, dimension), store_ids in groups.items():
                    hits += await search.search(
                        session,
                        deps.embedders(model),
                        store_ids,
                        dimension,
                        call.queries,
                        max_results=limit,
                        score_threshold=threshold,
                        filters=filters,
                    )
            if len(groups) > 1:
                hits.sort(key=lambda h: -h.score)
            call.hits = hits[:limit]
