"""``rewrite_query`` of the search endpoint: a model turns a question into a search query."""

from __future__ import annotations

import logging

from assistd.llm.chat import BackendRouter, ChatRequest

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Rewrite the user's message as one short search query for a document search engine: "
    "keep names, numbers, codes and key terms, drop filler words and politeness, do not "
    "answer it. Reply with the query only, on one line."
)


async def rewrite(router: BackendRouter, model: str, query: str) -> str:
    """The rewritten query; ``query`` itself when the model fails or answers nothing."""
    request = ChatRequest(
        model=model,
        messages=[
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": query},
        ],
        temperature=0,
        max_completion_tokens=64,
    )
    parts: list[str] = []
    try:
        async for chunk in router.backend_for(model).stream(request):
            if chunk.content:
                parts.append(chunk.content)
    except Exception as exc:  # a search must not fail because the rewrite did
        log.warning("rewrite_query with %s failed, searching the original: %s", model, exc)
        return query
    text = " ".join("".join(parts).split()).strip().strip('"')
    return text or query
