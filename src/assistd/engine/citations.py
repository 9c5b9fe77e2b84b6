"""File citations: the markers the model copies from search results (``【0:2†a.pdf】``)
become ``file_citation`` annotations that name the file and quote the cited passage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")
QUOTE_CHARS = 400


@dataclass(frozen=True)
class Source:
    """What a marker points at."""

    file_id: str
    quote: str


def _quote(text: str) -> str:
    """The start of the cited chunk, cut at a word boundary (text really in the file)."""
    text = text.strip()
    if len(text) <= QUOTE_CHARS:
        return text
    cut = text.rfind(" ", 0, QUOTE_CHARS)
    return text[: cut if cut > 0 else QUOTE_CHARS]


def lookup(search_calls: list[dict[str, Any]]) -> dict[tuple[int, int], Source]:
    """Marker ``(call, result)`` → source, for the run's file_search calls in order."""
    out: dict[tuple[int, int], Source] = {}
    for ordinal, call in enumerate(search_calls):
        for index, result in enumerate(call.get("file_search", {}).get("results") or []):
            text = "".join(p.get("text", "") for p in result.get("content") or [])
            out[(ordinal, index)] = Source(result["file_id"], _quote(text))
    return out


def annotate(text: str, sources: dict[tuple[int, int], Source]) -> list[dict[str, Any]]:
    """``file_citation`` annotations for every marker in ``text`` that points somewhere."""
    notes: list[dict[str, Any]] = []
    for match in MARKER.finditer(text):
        source = sources.get((int(match.group(1)), int(match.group(2))))
        if source is None:
            continue
        notes.append(
            {
                "type": "file_citation",
                "text": match.group(0),
                "start_index": match.start(),
                "end_index": match.end(),
                "file_citation": {"file_id": source.file_id, "quote": source.quote},
            }
        )
    return notes
