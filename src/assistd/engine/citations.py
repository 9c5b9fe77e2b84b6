"""File citations: the markers the model copies from search results (``【0:2†a.pdf】``)
become ``file_citation`` annotations that name the file and quote the cited passage; links
to files the code wrote (``sandbox:/mnt/data/…``) become ``file_path`` annotations (and,
for images, ``image_file`` parts too)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assistd.runs import wire

MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")
SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")
QUOTE_CHARS = 400
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


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
            wire.file_citation(
                match.group(0), match.start(), match.end(), source.file_id, source.quote
            )
        )
    return notes


def file_paths(text: str, paths: dict[str, str]) -> list[dict[str, Any]]:
    """``file_path`` annotations for ``sandbox:/mnt/data/...`` links to files the code wrote
    (``paths``: their path → file id)."""
    notes: list[dict[str, Any]] = []
    for match in SANDBOX_LINK.finditer(text):
        path = match.group(1).rstrip(".,;:")
        file_id = paths.get(path)
        if file_id is None:
            continue
        end = match.start() + len("sandbox:") + len(path)
        notes.append(wire.file_path(text[match.start() : end], match.start(), end, file_id))
    return notes


def linked_images(text: str, paths: dict[str, str]) -> list[str]:
    """File ids of the images the code wrote that ``text`` links, in link order, once each
    (an image by its name's extension)."""
    notes = file_paths(text, paths)
    found = [n["file_path"]["file_id"] for n in notes if n["text"].lower().endswith(IMAGE_SUFFIXES)]
    return list(dict.fromkeys(found))
