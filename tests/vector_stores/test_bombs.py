"""Decoding limits: small files that decode into huge content fail with the limit named, in
the parser (characters, a page's characters, an Office part's size) and in the parser
process (memory, time), which is replaced after a failure."""

from __future__ import annotations

import re
import time

import pytest

from assistd.core.config import IngestSettings
from assistd.vector_stores.parser_process import ParserPool
from assistd.vector_stores.parsing import LimitError, Limits, ParseError, extract_text
from tests.support.bombs import docx_bomb, pdf_bomb
from tests.vector_stores.test_parsing import make_docx, make_pdf, make_pptx, make_xlsx

NORMAL = b"# Notes\n\nThe lighthouse keeper logs every passing ship in a green ledger.\n"


def test_an_office_part_larger_than_the_limit_is_refused_unread() -> None:
    bomb = docx_bomb(100 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    started = time.monotonic()
    with pytest.raises(LimitError) as caught:
        extract_text("bomb.docx", bomb)
    assert time.monotonic() - started < 2  # refused from the declared size
    assert caught.value.code == "invalid_file"
    assert "word/document.xml" in caught.value.message
    assert "the 64 MiB limit per part" in caught.value.message


def test_a_docx_with_more_text_than_the_limit_stops_there() -> None:
    with pytest.raises(LimitError, match=re.escape("the 100,000-character limit")):
        extract_text("long.docx", docx_bomb(2 * 1024 * 1024), limits=Limits(max_chars=100_000))
    assert extract_text("short.docx", make_docx(), limits=Limits(max_chars=1000))


def test_a_pdf_page_with_more_characters_than_the_limit_is_refused() -> None:
    # One page whose content stream draws a million characters (most off the page).
    with pytest.raises(LimitError) as caught:
        extract_text("page.pdf", pdf_bomb(1024 * 1024), limits=Limits(max_page_chars=100_000))
    assert caught.value.message.startswith("Page 1 holds ")
    assert "the 100,000-character limit per page" in caught.value.message


def test_pdf_pages_count_together_against_the_character_limit() -> None:
    pdf = make_pdf(["Forty characters of text on each page. " * 10] * 3)
    assert extract_text("three.pdf", pdf, limits=Limits(max_chars=2000))
    with pytest.raises(LimitError, match=re.escape("the 1,000-character limit")):
        extract_text("three.pdf", pdf, limits=Limits(max_chars=1000))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"word " * 1000),
        ("page.html", b"<html><body>" + b"<p>word</p>" * 1000 + b"</body></html>"),
        ("deck.pptx", make_pptx()),
        ("book.xlsx", make_xlsx()),
        ("unnamed", b"word " * 1000),
    ],
)
def test_every_format_counts_against_the_character_limit(name: str, data: bytes) -> None:
    with pytest.raises(LimitError, match=re.escape("the 20-character limit")):
        extract_text(name, data, limits=Limits(max_chars=20))


def test_text_too_long_for_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(LimitError, match=re.escape("the 1,000-character limit")):
        extract_text("big.txt", b"\xff" * 4001, limits=Limits(max_chars=1000))


async def test_the_parser_process_is_ended_at_its_memory_limit_and_replaced() -> None:
    pool = ParserPool(IngestSettings(memory_bytes=512 * 1024 * 1024))
    try:
        with pytest.raises(ParseError) as caught:
            await pool.chunk("bomb.pdf", pdf_bomb(16 * 1024 * 1024), 800, 400)
        assert caught.value.code == "invalid_file"
        assert "the 512 MiB memory limit" in caught.value.message
        chunks = await pool.chunk("notes.md", NORMAL, 800, 400)
        assert [c.text for c in chunks] == [NORMAL.decode().strip()]
    finally:
        await pool.close()


async def test_the_parser_process_is_ended_at_its_time_limit_and_replaced() -> None:
    pool = ParserPool(IngestSettings(timeout_seconds=0.2))
    try:
        await pool.chunk("warm.md", NORMAL, 800, 400)  # the child is up: only parsing is timed
        started = time.monotonic()
        with pytest.raises(ParseError) as caught:
            await pool.chunk("slow.pdf", pdf_bomb(3 * 1024 * 1024), 800, 400)
        assert time.monotonic() - started < 2
        assert caught.value.code == "invalid_file"
        assert caught.value.message == "Parsing the file took longer than the 0.2 s limit."
        chunks = await pool.chunk("notes.md", NORMAL, 800, 400)
        assert chunks[0].text.startswith("# Notes")
    finally:
        await pool.close()


async def test_limits_reach_the_parser_process_and_its_errors_come_back() -> None:
    pool = ParserPool(IngestSettings(max_chars=50))
    try:
        with pytest.raises(LimitError, match=re.escape("the 50-character limit")):
            await pool.chunk("notes.md", NORMAL, 800, 400)
        with pytest.raises(ParseError) as caught:
            await pool.chunk("image.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 800, 400)
        assert caught.value.code == "unsupported_file"
        chunks = await pool.chunk("short.md", b"A short note.", 100, 0)
        assert [(c.index, c.text, c.page) for c in chunks] == [(0, "A short note.", None)]
    finally:
        await pool.close()
