"""Text extraction: every supported format is generated here, parsed, and checked."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import re
import time
import zipfile

import docx
import openpyxl
import pptx
import pytest
from fpdf import FPDF
from pptx.util import Inches

from assistd.vector_stores.parsing import (
    InvalidFileError,
    Page,
    ParseError,
    UnsupportedFileError,
    extract_text,
)

PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("The intro paragraph mentions zephyr.")
    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).text = "Name"
    table.cell(0, 1).text = "Value"
    table.cell(1, 0).text = "Widgets"
    table.cell(1, 1).text = "42"
    table.cell(2, 0).merge(table.cell(2, 1)).text = "Merged total"
    document.add_paragraph("Closing paragraph after the table.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx() -> bytes:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[5])
    assert first.shapes.title is not None
    first.shapes.title.text = "Opening slide about comets"
    group = first.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    box.text_frame.text = "Grouped text box"
    first.notes_slide.notes_text_frame.text = "Remember the speaker note"
    second = presentation.slides.add_slide(presentation.slide_layouts[6])
    table = second.shapes.add_table(2, 2, Inches(1), Inches(1), Inches(4), Inches(2)).table
    table.cell(0, 0).text = "Quarter"
    table.cell(0, 1).text = "Revenue"
    table.cell(1, 0).text = "Q3"
    table.cell(1, 1).text = "1234"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sales = workbook.active
    sales.title = "Sales"
    sales.append(["Item", "Qty", "Price"])
    sales.append(["Widget", 10, 2.5])
    sales.append([None, None])
    sales.append(["Gadget", 3.0, None, None])
    workbook.create_sheet("Empty")
    costs = workbook.create_sheet("Costs")
    costs["B3"] = "Rent"
    costs["C3"] = 1200
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def joined(pages: list[Page]) -> str:
    return "\n\n".join(page.text for page in pages)


# ---------------------------------------------------------------------------------------------
# Formats


def test_pdf_pages_keep_their_numbers() -> None:
    data = make_pdf(["Alpha page one text", "Bravo page two text", "Charlie page three text"])

    pages = extract_text("report.pdf", data)

    assert [page.page for page in pages] == [1, 2, 3]
    assert [page.text for page in pages] == [
        "Alpha page one text",
        "Bravo page two text",
        "Charlie page three text",
    ]


def test_pdf_blank_pages_are_left_out() -> None:
    pages = extract_text("report.pdf", make_pdf(["First", "", "Third"]))

    assert [(page.page, page.text) for page in pages] == [(1, "First"), (3, "Third")]


def test_pdf_falls_back_to_pypdf_when_pdfium_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    def broken(data: bytes) -> list[tuple[str, int | None]]:
        raise RuntimeError("pdfium exploded")

    monkeypatch.setattr(parsing, "_pdf_pypdfium2", broken)

    pages = extract_text("report.pdf", make_pdf(["Fallback one", "Fallback two"]))

    assert [(page.page, page.text.strip()) for page in pages] == [
        (1, "Fallback one"),
        (2, "Fallback two"),
    ]


def test_pdf_is_read_with_pdfium_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    def unused(data: bytes) -> list[tuple[str, int | None]]:
        raise AssertionError("pypdf is only the fallback")

    monkeypatch.setattr(parsing, "_pdf_pypdf", unused)

    assert extract_text("report.pdf", make_pdf(["Primary"])) == [Page(text="Primary", page=1)]


def test_docx_paragraphs_and_tables_in_document_order() -> None:
    text = joined(extract_text("report.docx", make_docx()))

    assert text.index("Quarterly report") < text.index("zephyr") < text.index("Name\tValue")
    assert "Widgets\t42" in text
    assert "Merged total\tMerged" not in text  # a merged cell is written once
    assert "Merged total" in text
    assert text.index("Widgets\t42") < text.index("Closing paragraph after the table.")


def test_docx_runs_of_empty_paragraphs_collapse() -> None:
    document = docx.Document()
    for text in ("First  ", "", "", "   ", "", "Second"):
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)

    assert extract_text("gaps.docx", buffer.getvalue()) == [Page(text="First\n\nSecond")]


def test_docx_is_unpaged() -> None:
    assert [page.page for page in extract_text("report.docx", make_docx())] == [None]


def test_pptx_one_page_per_slide() -> None:
    pages = extract_text("deck.pptx", make_pptx())

    assert [page.page for page in pages] == [1, 2]
    first, second = pages
    assert "Opening slide about comets" in first.text
    assert "Grouped text box" in first.text
    assert "Remember the speaker note" in first.text
    assert "Quarter\tRevenue" in second.text
    assert "Q3\t1234" in second.text
    assert "comets" not in second.text


def test_xlsx_one_page_per_sheet_with_heading() -> None:
    pages = extract_text("book.xlsx", make_xlsx())

    # The empty second sheet is dropped, numbering stays by sheet position.
    assert [page.page for page in pages] == [1, 3]
    sales, costs = pages
    assert sales.text == "# Sales\n\nItem\tQty\tPrice\nWidget\t10\t2.5\nGadget\t3"
    assert costs.text.startswith("# Costs\n\n")
    assert "\tRent\t1200" in costs.text


def test_html_visible_text_only() -> None:
    markup = b"""<!DOCTYPE html>
    <html><head><title>Page title</title>
    <style>.secret { color: red }</style>
    <script>var token = "SCRIPT_SECRET";</script></head>
    <body><h1>Main heading</h1>
    <p>First <b>bold</b>
       paragraph.</p><div>Second block</div>
    <ul><li>item one</li><li>item two</li></ul>
    <p hidden>hidden words</p><div style="display: none"><span>invisible words</span></div>
    <noscript><p>enable javascript</p></noscript>
    <table><tr><td>cell a</td><td>cell b</td></tr></table>
    <!-- a comment -->
    <pre>  code
    indented</pre>line<br>break
    </body></html>"""

    (page,) = extract_text("page.html", markup)

    lines = page.text.split("\n")
    for expected in ("Page title", "Main heading", "First bold paragraph.", "Second block"):
        assert expected in lines
    assert "item one" in lines
    assert "item two" in lines
    assert "cell a\tcell b" in lines
    assert "line" in lines
    assert "break" in lines
    assert "  code" in lines
    for absent in ("SCRIPT_SECRET", "color", "hidden words", "invisible", "javascript", "comment"):
        assert absent not in page.text
    assert page.page is None


def test_xhtml_with_xml_declaration_and_a_stray_nul() -> None:
    filler = "words " * 40
    markup = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<html><body><p>X\x00HTML body</p><p>{filler}</p></body></html>"
    )

    (page,) = extract_text("page.xhtml", markup.encode())

    assert page.text == "XHTML body\n" + filler.strip()


def test_deeply_nested_html_keeps_its_text() -> None:
    markup = "<div>" * 1500 + "deep text" + "</div>" * 1500 + "<p>after</p>"

    (page,) = extract_text("deep.html", markup.encode())

    assert page.text == "deep text\nafter"


def test_malformed_html_is_parsed_in_linear_time() -> None:
    # CPython 3.11's html.parser needs over a minute for this; libxml2 a millisecond.
    started = time.perf_counter()

    with pytest.raises(InvalidFileError, match="no extractable text"):
        extract_text("evil.html", b"<a" * 100_000)

    assert time.perf_counter() - started < 10


def test_html_respects_meta_charset() -> None:
    markup = '<html><head><meta charset="windows-1252"></head><body>Café “quoted”</body></html>'

    (page,) = extract_text("page.htm", markup.encode("cp1252"))

    assert "Café “quoted”" in page.text


def test_markdown_is_kept_verbatim() -> None:
    source = "# Title\n\nSome *markdown* with a [link](https://example.com).\n\n- item\n"

    assert extract_text("README.md", source.encode()) == [
        Page(text="# Title\n\nSome *markdown* with a [link](https://example.com).\n\n- item")
    ]


def test_json_is_pretty_printed() -> None:
    data = json.dumps({"name": "assistd", "tags": ["a", "ü"], "n": 3}, separators=(",", ":"))

    (page,) = extract_text("data.json", data.encode())

    assert page.text == '{\n  "name": "assistd",\n  "tags": [\n    "a",\n    "ü"\n  ],\n  "n": 3\n}'


def test_invalid_json_is_indexed_as_text() -> None:
    (page,) = extract_text("broken.json", b'{"unterminated": ')

    assert page.text == '{"unterminated":'


def test_csv() -> None:
    (page,) = extract_text("table.csv", b"city,population\r\nParis,2100000\r\nLyon,520000\r\n")

    assert page.text == "city,population\nParis,2100000\nLyon,520000"


def test_python_source_keeps_indentation() -> None:
    source = 'def greet(name: str) -> str:\n    return f"hello {name}"\n'

    (page,) = extract_text("greet.py", source.encode())

    assert page.text == 'def greet(name: str) -> str:\n    return f"hello {name}"'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Grüße, 日本語 text".encode("utf-16"), "Grüße, 日本語 text"),  # with BOM
        ("Grüße, 日本語 text".encode("utf-16-be"), "Grüße, 日本語 text"),  # without BOM
        ("plain utf-16 le".encode("utf-16-le"), "plain utf-16 le"),
        (b"\xef\xbb\xbfUTF-8 with BOM", "UTF-8 with BOM"),
        ("café crème brûlée".encode("latin-1"), "café crème brûlée"),
        ("emoji 😀 and 中文".encode(), "emoji 😀 and 中文"),
        (b"cut multibyte at the end \xe6\x97", "cut multibyte at the end"),
    ],
)
def test_text_encodings(data: bytes, expected: str) -> None:
    assert extract_text("notes.txt", data) == [Page(text=expected)]


def test_control_characters_and_crlf_are_cleaned() -> None:
    filler = b"lorem ipsum " * 50
    data = b"one\r\ntwo\rthree\x00\x01 four\n" + filler

    (page,) = extract_text("notes.txt", data)

    assert page.text == "one\ntwo\nthree four\n" + filler.decode().rstrip()


# ---------------------------------------------------------------------------------------------
# Sniffing: names that say nothing


def test_pdf_without_extension_is_sniffed() -> None:
    pages = extract_text("download", make_pdf(["Sniffed PDF text"]))

    assert pages == [Page(text="Sniffed PDF text", page=1)]


@pytest.mark.parametrize(
    ("maker", "needle"),
    [(make_docx, "zephyr"), (make_pptx, "comets"), (make_xlsx, "Widget\t10")],
)
def test_office_zip_without_extension_is_sniffed(maker: object, needle: str) -> None:
    assert callable(maker)
    assert needle in joined(extract_text("upload.bin", maker()))


def test_unknown_extension_with_text_is_read_as_text() -> None:
    assert extract_text("settings.weird", b"key = value\n") == [Page(text="key = value")]


def test_html_sniffed_from_content() -> None:
    (page,) = extract_text("index", b"<!doctype html><p>Hi <script>x()</script>there</p>")

    assert page.text == "Hi there"


def test_mime_type_marks_text_as_html() -> None:
    (page,) = extract_text("blob", b"<p>one</p><p>two</p>", mime_type="text/html; charset=utf-8")

    assert page.text == "one\ntwo"


def test_mime_charset_is_used_for_legacy_text() -> None:
    data = "こんにちは".encode("shift_jis")

    (page,) = extract_text("blob", data, mime_type="text/plain; charset=shift_jis")

    assert page.text == "こんにちは"


# ---------------------------------------------------------------------------------------------
# Errors


def test_errors_carry_codes() -> None:
    assert issubclass(UnsupportedFileError, ParseError)
    assert issubclass(InvalidFileError, ParseError)
    assert UnsupportedFileError("x").code == "unsupported_file"
    assert InvalidFileError("x").code == "invalid_file"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + random.Random(1).randbytes(4000),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF",
        b"not a pdf at all",
    ],
)
def test_corrupt_pdf_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFileError) as caught:
        extract_text("broken.pdf", data)

    assert caught.value.code == "invalid_file"
    assert str(caught.value)


def test_truncated_pdf_is_invalid() -> None:
    with pytest.raises(InvalidFileError):
        extract_text("broken.pdf", make_pdf(["Some text"])[:200])


def test_pdf_without_text_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="no extractable text"):
        extract_text("scan.pdf", make_pdf(["", ""]))


@pytest.mark.parametrize("name", ["broken.docx", "broken.pptx", "broken.xlsx"])
def test_corrupt_office_files_are_invalid(name: str) -> None:
    with pytest.raises(InvalidFileError):
        extract_text(name, b"PK\x03\x04" + random.Random(2).randbytes(2000))


def test_zip_that_is_not_a_docx_is_invalid() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")

    with pytest.raises(InvalidFileError):
        extract_text("letter.docx", buffer.getvalue())


def test_truncated_docx_is_invalid() -> None:
    data = make_docx()

    with pytest.raises(InvalidFileError):
        extract_text("letter.docx", data[: len(data) // 2])


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.docx", "empty"])
def test_empty_file_is_invalid(name: str) -> None:
    with pytest.raises(InvalidFileError, match="empty"):
        extract_text(name, b"")


@pytest.mark.parametrize("name", ["blank.txt", "blank.md", "blank"])
def test_whitespace_only_file_is_invalid(name: str) -> None:
    with pytest.raises(InvalidFileError, match="no extractable text"):
        extract_text(name, b" \n\t\r\n  \n")


def test_html_without_visible_text_is_invalid() -> None:
    with pytest.raises(InvalidFileError):
        extract_text("page.html", b"<html><script>only()</script><style>p{}</style></html>")


def test_binary_inside_a_text_extension_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="binary"):
        extract_text("notes.txt", random.Random(3).randbytes(4096))


@pytest.mark.parametrize("name", ["image.png", "image", "photo.unknown"])
def test_png_is_unsupported(name: str) -> None:
    with pytest.raises(UnsupportedFileError, match="PNG") as caught:
        extract_text(name, PNG_BYTES)

    assert caught.value.code == "unsupported_file"


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_random_binary_is_unsupported(seed: int) -> None:
    with pytest.raises(UnsupportedFileError):
        extract_text("data.bin", random.Random(seed).randbytes(8192))


def test_plain_zip_is_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")

    with pytest.raises(UnsupportedFileError, match="ZIP"):
        extract_text("archive.zip", buffer.getvalue())


def test_legacy_office_is_unsupported() -> None:
    with pytest.raises(UnsupportedFileError, match=r"\.docx"):
        extract_text("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    with pytest.raises(UnsupportedFileError, match="Legacy"):
        extract_text("old", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))


# ---------------------------------------------------------------------------------------------
# Limits


def test_page_limit_caps_pdf_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    monkeypatch.setattr(parsing, "MAX_PAGES", 2)

    pages = extract_text("long.pdf", make_pdf(["one", "two", "three", "four"]))

    assert [page.page for page in pages] == [1, 2]


def test_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    monkeypatch.setattr(parsing, "MAX_UNPACKED_BYTES", 10_000)

    with pytest.raises(InvalidFileError, match="unpacks"):
        extract_text("book.xlsx", make_xlsx())


def test_huge_declared_sheet_dimensions_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    # Trusting the declared size would pad every row to 16384 cells and exhaust this budget.
    monkeypatch.setattr(parsing, "MAX_SHEET_CELLS", 100)
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_xlsx())) as source,
        zipfile.ZipFile(buffer, "w") as target,
    ):
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                content, count = re.subn(
                    rb'<dimension ref="[A-Z0-9:]+"/>', b'<dimension ref="A1:XFD1048576"/>', content
                )
                assert count == 1
            target.writestr(info, content)

    pages = extract_text("book.xlsx", buffer.getvalue())

    assert pages[0].text == "# Sales\n\nItem\tQty\tPrice\nWidget\t10\t2.5\nGadget\t3"


def test_cell_budget_stops_reading_a_workbook(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistd.vector_stores import parsing

    monkeypatch.setattr(parsing, "MAX_SHEET_CELLS", 6)

    pages = extract_text("book.xlsx", make_xlsx())

    assert pages == [Page(text="# Sales\n\nItem\tQty\tPrice\nWidget\t10\t2.5", page=1)]


def test_page_is_frozen() -> None:
    page = Page(text="x", page=1)

    with pytest.raises(dataclasses.FrozenInstanceError):
        page.text = "y"  # type: ignore[misc]
