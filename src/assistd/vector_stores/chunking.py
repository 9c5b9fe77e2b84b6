"""Token-window chunking, as OpenAI's ``static`` chunking strategy does it.

The pages of a document are joined with blank lines and encoded once with ``o200k_base``.
Chunk ``i`` is the window of ``max_tokens`` tokens that starts ``max_tokens - overlap_tokens``
tokens after chunk ``i - 1`` starts, so consecutive chunks share ``overlap_tokens`` tokens,
and the last chunk ends with the document.

Byte-level BPE tokens may split a multi-byte UTF-8 character. A window edge that falls inside
a character is moved back to the nearest token that starts a character (a few tokens at most);
in the rare case none is near, the character goes whole to the chunk holding its first byte.
Chunk texts therefore never contain U+FFFD that the document did not have.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

from assistd.llm.tokens import encoding
from assistd.vector_stores.parsing import Page

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OVERLAP_TOKENS",
    "MAX_TOKENS_RANGE",
    "Chunk",
    "chunk_pages",
]

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP_TOKENS = 400
MAX_TOKENS_RANGE = (100, 4096)
PAGE_SEPARATOR = "\n\n"
_BOUNDARY_SEARCH = 8  # tokens to look back for a character boundary


@dataclass(frozen=True, slots=True)
class Chunk:
    """One window of a document: its position, text, token count and starting page."""

    index: int
    text: str
    tokens: int
    page: int | None = None
    head: int = field(default=0, compare=False)
    """Characters at the start of ``text`` that the previous chunk also has (its overlap)."""
    tail: int | None = field(default=None, compare=False)
    """Where the part of ``text`` that the next chunk also has starts (None: no next)."""

    def segments(self) -> list[str]:
        """``text`` cut where the overlaps with the neighbours begin and end: an overlap
        is the same string in both chunks, so what is derived from it (window embeddings)
        can be shared."""
        cuts = sorted({0, self.head, len(self.text) if self.tail is None else self.tail})
        cuts.append(len(self.text))
        parts = [self.text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
        return [p for p in parts if p.strip()]


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    lengths: list[int]  # bytes in each token
    continues: bytes  # 1 where a token starts with a UTF-8 continuation byte


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    enc = encoding()
    lengths = [0] * (enc.max_token_value + 1)
    continues = bytearray(enc.max_token_value + 1)
    for token in range(enc.max_token_value + 1):
        try:
            raw = enc.decode_single_token_bytes(token)
        except KeyError:  # ids between the ordinary and the special tokens
            continue
        lengths[token] = len(raw)
        continues[token] = bool(raw) and raw[0] & 0xC0 == 0x80
    return _Vocabulary(lengths=lengths, continues=bytes(continues))


def _validate(max_tokens: int, overlap_tokens: int) -> None:
    low, high = MAX_TOKENS_RANGE
    if not low <= max_tokens <= high:
        raise ValueError(f"max_tokens must be between {low} and {high}, got {max_tokens}")
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError(
            f"overlap_tokens must be between 0 and max_tokens // 2 ({max_tokens // 2}), "
            f"got {overlap_tokens}"
        )


def _continuation_prefix(data: bytes) -> int:
    """How many bytes at the start of ``data`` are UTF-8 continuation bytes."""
    count = 0
    while count < len(data) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _chars(data: bytes, byte_offset: int) -> int:
    """Characters of ``data`` (decoded as the chunk is) before ``byte_offset``."""
    byte_offset = max(0, min(byte_offset, len(data)))
    return len(data[:byte_offset].decode("utf-8", errors="replace"))


def chunk_pages(
    pages: list[Page],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Split a document into overlapping token windows.

    ``Chunk.page`` is the page where the chunk's text starts (``None`` for unpaged text).
    Raises ``ValueError`` unless ``100 <= max_tokens <= 4096`` and
    ``0 <= overlap_tokens <= max_tokens // 2``.
    """
    _validate(max_tokens, overlap_tokens)
    text = PAGE_SEPARATOR.join(page.text for page in pages)
    if not text.strip():
        return []

    # Byte offset where each page starts in the joined text, to map chunks to pages.
    page_starts: list[int] = []
    offset = 0
    separator = len(PAGE_SEPARATOR.encode())
    for page in pages:
        page_starts.append(offset)
        offset += len(page.text.encode("utf-8", errors="replace")) + separator

    enc = encoding()
    vocab = _vocabulary()
    # As encode_ordinary, into 4 bytes a token rather than a list of int objects (a text at
    # the ingestion limit is millions of tokens).
    tokens = enc.encode_to_numpy(text, disallowed_special=())
    total = len(tokens)
    continues = vocab.continues

    def clean(position: int) -> bool:
        """Whether a cut before ``tokens[position]`` falls between two characters."""
        return position >= total or not continues[int(tokens[position])]

    def span_bytes(first: int, stop: int) -> int:
        """Bytes of ``tokens[first:stop]``."""
        return sum(map(vocab.lengths.__getitem__, tokens[first:stop].tolist()))

    def cut(position: int, floor: int) -> int:
        """The nearest clean cut at or before ``position`` (and after ``floor``)."""
        for candidate in range(position, max(floor, position - _BOUNDARY_SEARCH), -1):
            if clean(candidate):
                return candidate
        return position  # none near: the split character goes whole to one chunk (below)

    step = max_tokens - overlap_tokens
    chunks: list[Chunk] = []
    previous_end_bytes = 0
    start = 0
    start_byte = 0  # byte offset of tokens[start] in the joined text
    while True:
        end = total if start + max_tokens >= total else cut(start + max_tokens, start)
        data = enc.decode_bytes(tokens[start:end].tolist())
        skipped = 0
        if not clean(start):  # the split character belongs to the previous chunk
            skipped = _continuation_prefix(data)
            data = data[skipped:]
        if not clean(end):  # complete the character split at the end
            following = enc.decode_bytes(tokens[end : end + 4].tolist())
            data += following[: _continuation_prefix(following)]
        chunk_text = data.decode("utf-8", errors="replace")
        following_start = end if end >= total else cut(start + step, start)
        # The overlaps as character offsets: the previous chunk's end, the next one's start.
        head = _chars(data, previous_end_bytes - skipped) if previous_end_bytes else 0
        tail_bytes = span_bytes(start, following_start) - skipped
        tail = None if end >= total else _chars(data, tail_bytes)
        if chunk_text.strip():
            first = start_byte + skipped + len(data) - len(data.lstrip())
            start_page = pages[bisect_right(page_starts, first) - 1].page
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=chunk_text,
                    tokens=end - start,
                    page=start_page,
                    head=head,
                    tail=tail,
                )
            )
        if end >= total:
            break
        # Bytes of this chunk (from the next one's start) that the next chunk starts with.
        previous_end_bytes = span_bytes(following_start, end)
        start_byte += span_bytes(start, following_start)
        start = following_start
    return chunks
