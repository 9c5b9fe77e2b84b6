"""Token-window chunking: sizes, overlaps, coverage, UTF-8 safety and page mapping."""

from __future__ import annotations

import random

import pytest

from assistd.llm.tokens import encoding
from assistd.vector_stores import chunking
from assistd.vector_stores.chunking import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    Chunk,
    chunk_pages,
)
from assistd.vector_stores.parsing import Page

WORDS = (  # noqa: SIM905
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
MULTIBYTE_WORDS = (  # noqa: SIM905
    "日本語 中文字符 한국어 emoji😀 🎉🎊 👩‍👩‍👧‍👦 naïve café Ωμέγα ∑∫√ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 "
    "𠜎𠜱𠝹𠱓 ࿐ꙮ 🇫🇷🇯🇵 ascii words too"
).split()


def words(count: int, vocabulary: list[str] = WORDS, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def tokens_of(text: str) -> list[int]:
    return encoding().encode_ordinary(text)


def spans(text: str, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Where each chunk's text sits in ``text``, found in order."""
    found: list[tuple[int, int]] = []
    position = 0
    for chunk in chunks:
        start = text.find(chunk.text, position)
        assert start >= 0, f"chunk {chunk.index} is not a substring after {position}"
        found.append((start, start + len(chunk.text)))
        position = start + 1
    return found


def test_defaults() -> None:
    assert (DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS) == (800, 400)


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(99, 0), (4097, 0), (0, 0), (800, 401), (800, -1), (101, 51), (100, 51)],
)
def test_invalid_parameters(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_pages([Page(text="hello")], max_tokens, overlap_tokens)


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(100, 0), (100, 50), (101, 50), (4096, 2048), (800, 400), (800, 0)],
)
def test_boundary_parameters_are_accepted(max_tokens: int, overlap_tokens: int) -> None:
    assert len(chunk_pages([Page(text="hello")], max_tokens, overlap_tokens)) == 1


def test_short_text_is_one_chunk() -> None:
    text = "A short document about chunking."

    assert chunk_pages([Page(text=text, page=7)]) == [
        Chunk(index=0, text=text, tokens=len(tokens_of(text)), page=7)
    ]


@pytest.mark.parametrize("pages", [[], [Page(text="")], [Page(text=" \n\t "), Page(text="\n")]])
def test_nothing_to_chunk(pages: list[Page]) -> None:
    assert chunk_pages(pages) == []


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"), [(800, 400), (800, 0), (100, 50), (333, 111), (4096, 2048)]
)
def test_windows_are_exact_token_slices(max_tokens: int, overlap_tokens: int) -> None:
    text = words(6000)
    tokens = tokens_of(text)
    step = max_tokens - overlap_tokens
    starts = [0]
    while starts[-1] + max_tokens < len(tokens):
        starts.append(starts[-1] + step)

    chunks = chunk_pages([Page(text=text)], max_tokens, overlap_tokens)

    expected = [encoding().decode(tokens[start : start + max_tokens]) for start in starts]
    assert [chunk.text for chunk in chunks] == expected
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert [chunk.tokens for chunk in chunks] == [
        min(max_tokens, len(tokens) - start) for start in starts
    ]
    assert len(chunks) == 1 + -(-(len(tokens) - max_tokens) // step)


def test_consecutive_chunks_share_exactly_overlap_tokens() -> None:
    text = words(5000, seed=1)
    tokens = tokens_of(text)

    chunks = chunk_pages([Page(text=text)], 800, 400)

    assert len(chunks) > 5
    for index, (first, second) in enumerate(zip(chunks, chunks[1:], strict=False)):
        first_end, second_start = index * 400 + 800, (index + 1) * 400
        shared = encoding().decode(tokens[second_start:first_end])
        assert len(tokens_of(shared)) == 400
        assert first.text.endswith(shared)
        assert second.text.startswith(shared)
        # ...and not one token more on either side.
        assert not second.text.startswith(encoding().decode(tokens[second_start - 1 : first_end]))
        assert not first.text.endswith(encoding().decode(tokens[second_start : first_end + 1]))


def test_every_chunk_fits_and_the_last_one_ends_the_document() -> None:
    text = words(7000, seed=2)

    chunks = chunk_pages([Page(text=text)], 500, 100)

    assert all(chunk.tokens <= 500 for chunk in chunks)
    assert all(len(tokens_of(chunk.text)) <= 500 for chunk in chunks)
    assert all(chunk.tokens == 500 for chunk in chunks[:-1])
    assert text.endswith(chunks[-1].text)
    assert text.startswith(chunks[0].text)


@pytest.mark.parametrize("overlap_tokens", [0, 1, 37, 150])
def test_chunks_cover_the_whole_text(overlap_tokens: int) -> None:
    text = words(4000, seed=3)

    chunks = chunk_pages([Page(text=text)], 300, overlap_tokens)

    found = spans(text, chunks)
    assert found[0][0] == 0
    assert found[-1][1] == len(text)
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        assert start <= end  # no gap
    if overlap_tokens == 0:
        assert "".join(chunk.text for chunk in chunks) == text


@pytest.mark.parametrize("boundary_search", [8, 0])
@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(100, 0), (100, 50), (137, 13)])
def test_multibyte_text_is_never_cut_inside_a_character(
    monkeypatch: pytest.MonkeyPatch, boundary_search: int, max_tokens: int, overlap_tokens: int
) -> None:
    # With boundary_search 0 no cut is moved, so every split character is completed instead.
    monkeypatch.setattr(chunking, "_BOUNDARY_SEARCH", boundary_search)
    text = words(6000, MULTIBYTE_WORDS, seed=4)
    tokens = tokens_of(text)
    splits = sum(encoding().decode_single_token_bytes(token)[0] & 0xC0 == 0x80 for token in tokens)
    assert splits > 100  # the text does make tokens that start inside a character

    chunks = chunk_pages([Page(text=text)], max_tokens, overlap_tokens)

    assert len(chunks) > 50
    assert all("\ufffd" not in chunk.text for chunk in chunks)
    assert all(chunk.tokens <= max_tokens for chunk in chunks)
    found = spans(text, chunks)
    assert found[0][0] == 0
    assert found[-1][1] == len(text)
    for (_, end), (start, _) in zip(found, found[1:], strict=False):
        assert start <= end
    if overlap_tokens == 0:
        assert "".join(chunk.text for chunk in chunks) == text


def test_cuts_move_back_to_character_boundaries() -> None:
    text = words(6000, MULTIBYTE_WORDS, seed=5)
    tokens = tokens_of(text)

    chunks = chunk_pages([Page(text=text)], 100, 0)

    # Each chunk is exactly its token window: no cut needed completing a split character.
    start = 0
    shortened = 0
    for chunk in chunks:
        assert chunk.text == encoding().decode(tokens[start : start + chunk.tokens])
        shortened += chunk.tokens < 100
        start += chunk.tokens
    assert start == len(tokens)
    assert shortened > 0  # some windows did end early to avoid splitting a character


def test_replacement_characters_already_in_the_text_are_kept() -> None:
    text = "broken \ufffd byte " + words(500)

    chunks = chunk_pages([Page(text=text)], 100, 0)

    assert "".join(chunk.text for chunk in chunks) == text


def test_pages_map_to_the_page_where_each_chunk_starts() -> None:
    pages = [Page(text=words(300 + 170 * number, seed=number), page=number) for number in (1, 2, 3)]
    joined = "\n\n".join(page.text for page in pages)
    page_ranges = []
    position = 0
    for page in pages:
        page_ranges.append((position, position + len(page.text), page.page))
        position += len(page.text) + 2

    chunks = chunk_pages(pages, 100, 0)

    assert {chunk.page for chunk in chunks} == {1, 2, 3}
    for (start, _), chunk in zip(spans(joined, chunks), chunks, strict=True):
        first = start + len(chunk.text) - len(chunk.text.lstrip())
        (expected,) = [number for low, high, number in page_ranges if low <= first < high]
        assert chunk.page == expected, chunk.index


def test_pages_map_with_multibyte_text() -> None:
    pages = [
        Page(text=words(400, MULTIBYTE_WORDS, seed=10 + number), page=number)
        for number in (4, 5, 6)
    ]
    joined = "\n\n".join(page.text for page in pages)
    starts = [joined.index(page.text) for page in pages]

    chunks = chunk_pages(pages, 150, 0)

    for (start, _), chunk in zip(spans(joined, chunks), chunks, strict=True):
        first = start + len(chunk.text) - len(chunk.text.lstrip())
        expected = [page.page for page, low in zip(pages, starts, strict=True) if low <= first][-1]
        assert chunk.page == expected


def test_a_chunk_starting_on_a_page_break_belongs_to_the_next_page() -> None:
    first_page = words(2000, seed=20)
    cut = encoding().decode(tokens_of(first_page)[:100])
    pages = [Page(text=cut, page=1), Page(text="second page text " * 40, page=2)]

    chunks = chunk_pages(pages, 100, 0)

    assert chunks[0].text == cut
    assert chunks[1].text.lstrip().startswith("second page")
    assert [chunk.page for chunk in chunks] == [1] + [2] * (len(chunks) - 1)


def test_unpaged_text_has_no_page() -> None:
    chunks = chunk_pages([Page(text=words(3000))], 200, 20)

    assert {chunk.page for chunk in chunks} == {None}


def test_large_document() -> None:
    text = "\n\n".join(words(1000, seed=seed) for seed in range(300))  # ~300k tokens
    tokens = tokens_of(text)

    chunks = chunk_pages([Page(text=text, page=1)], 800, 400)

    assert len(chunks) == 1 + -(-(len(tokens) - 800) // 400)
    assert chunks[-1].text == encoding().decode(tokens[(len(chunks) - 1) * 400 :])
    assert chunks[123].text == encoding().decode(tokens[123 * 400 : 123 * 400 + 800])


@pytest.mark.parametrize(("max_tokens", "overlap"), [(800, 400), (300, 100), (200, 0), (100, 50)])
def test_overlaps_are_the_same_text_in_both_chunks(max_tokens: int, overlap: int) -> None:
    """A chunk's last segment is exactly the next chunk's first one (shared window
    embeddings rely on it), and the segments put together are the chunk."""
    rng = random.Random(max_tokens + overlap)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "épsilon",
        "zeta",
        "数据",
        "naïve",
        "café",
        "42",
        "x86_64",
        "foo_bar",
    ]
    text = " ".join(rng.choice(words) for _ in range(2500))
    chunks = chunk_pages([Page(text, 1)], max_tokens, overlap)
    assert len(chunks) > 3
    for chunk in chunks:
        assert "".join(chunk.segments()) == chunk.text
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.tail is not None
        assert before.text[before.tail :] == after.text[: after.head]
        if overlap:
            assert before.segments()[-1] == after.segments()[0]
        else:
            assert after.head == 0
    assert chunks[-1].tail is None
