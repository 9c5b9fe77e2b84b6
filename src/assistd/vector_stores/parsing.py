"""Text extraction for file_search: bytes of an uploaded file in, pages of plain text out.

The parser is chosen by the file name's extension, else by sniffing the bytes (``%PDF``, a ZIP
holding ``word/``, ``ppt/`` or ``xl/`` parts, known binary signatures, text that decodes
cleanly); the MIME type only tells sniffed text apart as HTML or JSON and may name a charset.
Everything here is pure and CPU-bound: no I/O besides the bytes passed in, so callers run it
in a worker thread (``asyncio.to_thread``).

Limits keep hostile input bounded: at most :data:`MAX_PAGES` pages, slides or sheets are read
(the rest are ignored), Office ZIPs may not unpack to more than :data:`MAX_UNPACKED_BYTES`,
and a workbook is read for at most :data:`MAX_SHEET_CELLS` cells. :class:`Limits` bound what a
file decodes to (its text, a PDF page's characters, each Office part); a file breaking one
raises :class:`LimitError`. Memory and time are bounded by the process this runs in
(``parser_process``). PDFium is not thread-safe, so PDF parsing with it is serialised by a
process-wide lock. HTML goes through lxml, not ``html.parser`` (see :func:`_html_to_text`).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from docx.table import Table

__all__ = [
    "MAX_PAGES",
    "InvalidFileError",
    "LimitError",
    "Limits",
    "Page",
    "ParseError",
    "UnsupportedFileError",
    "extract_text",
]

MAX_PAGES = 5000
"""Pages (PDF), slides (PPTX) or sheets (XLSX) read from one file; later ones are ignored."""

MAX_UNPACKED_BYTES = 1 << 30
"""A DOCX/PPTX/XLSX whose parts declare more than this many unpacked bytes is rejected."""

MAX_ZIP_ENTRIES = 100_000
"""A DOCX/PPTX/XLSX with more parts than this is rejected."""

MAX_SHEET_CELLS = 10_000_000
"""Cells (including padding for gaps) read from a workbook before the rest is ignored."""

Kind = Literal["pdf", "docx", "pptx", "xlsx", "html", "json", "text"]


@dataclass(frozen=True, slots=True)
class Page:
    """Text of one page (PDF page, slide, sheet) or of a whole unpaged document."""

    text: str
    page: int | None = None


class ParseError(Exception):
    """A file could not be turned into text; ``code`` is the vector store file error code."""

    code: str = "invalid_file"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFileError(ParseError):
    """The file's type is not one file_search can read (an image, an archive, random bytes)."""

    code = "unsupported_file"


class InvalidFileError(ParseError):
    """The file claims a supported type but is corrupt, or holds no extractable text."""

    code = "invalid_file"


class LimitError(InvalidFileError):
    """The file decodes to more than a :class:`Limits` bound allows."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one file may decode to (``IngestSettings`` holds the configured ones)."""

    max_chars: int = 20_000_000
    """Characters of text extracted from the whole file."""
    max_page_chars: int = 1_000_000
    """Characters on one PDF page, drawn inside its box or not."""
    max_part_bytes: int = 64 << 20
    """Unpacked bytes of each part (XML or media) of a DOCX, PPTX or XLSX."""


def size_text(count: int) -> str:
    """A byte count for messages: ``64 MiB``, ``1 GiB``, ``1.5 GiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.4g} {unit}"
    return f"{count} bytes"


class _Budget:
    """Counts extracted characters against :attr:`Limits.max_chars` as a parser goes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.left = limits.max_chars

    def take(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise LimitError(
                f"The file's text exceeds the {self.limits.max_chars:,}-character limit."
            )
        return text

    def page(self, chars: int, number: int) -> None:
        if chars > self.limits.max_page_chars:
            raise LimitError(
                f"Page {number} holds {chars:,} characters, more than the "
                f"{self.limits.max_page_chars:,}-character limit per page."
            )


# ------------------------------------------------------------------------------------------
# Type detection

_TEXT_EXTENSIONS = frozenset(
    """
    txt text md markdown mdx rst adoc asciidoc org csv tsv log jsonl ndjson
    py pyi pyw ipynb js mjs cjs jsx ts tsx mts cts java c h cpp cc cxx hpp hh hxx cs go rb php
    sh bash zsh fish ps1 bat cmd rs swift kt kts scala sc groovy gradle clj cljs edn ex exs erl
    hrl hs lua pl pm r jl dart m mm f f90 vb fs fsx ml mli elm nim zig v sv vhd asm s
    sql css scss sass less tex bib sty cls xml xsd xsl svg yaml yml toml ini cfg conf
    properties env proto graphql gql vue svelte astro tf hcl dockerfile makefile cmake
    """.split()  # noqa: SIM905
)
_HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml", "shtml"})
_EXTENSION_KINDS: dict[str, Kind] = {
    "pdf": "pdf",
    "docx": "docx",
    "pptx": "pptx",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
    "json": "json",
    **dict.fromkeys(_HTML_EXTENSIONS, "html"),
    **dict.fromkeys(_TEXT_EXTENSIONS, "text"),
}
_LEGACY_OFFICE = {"doc": "Word 97-2003 (.doc)", "xls": "Excel 97-2003", "ppt": "PowerPoint 97-2003"}

# Consulted only for data that sniffs as text, to tell HTML and JSON from plain text.
_MIME_KINDS: dict[str, Kind] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/xml": "text",
    "application/javascript": "text",
    "application/x-javascript": "text",
    "application/typescript": "text",
    "application/x-sh": "text",
    "application/x-yaml": "text",
    "application/yaml": "text",
    "application/toml": "text",
    "application/sql": "text",
    "application/x-tex": "text",
    "application/x-python": "text",
    "application/x-ndjson": "text",
}

# Signatures of binary formats we cannot read, for a clear error message.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"BM", "BMP image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"\x00\x00\x01\x00", "icon"),
    (b"RIFF", "RIFF media (WebP/WAV/AVI)"),
    (b"OggS", "Ogg media"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"\x1aE\xdf\xa3", "Matroska/WebM video"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"(\xb5/\xfd", "zstd archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\xca\xfe\xba\xbe", "Java class / Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "Mach-O binary"),
    (b"\x00asm", "WebAssembly module"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"wOFF", "web font"),
    (b"wOF2", "web font"),
)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

_SUPPORTED = (
    "PDF, DOCX, PPTX, XLSX, HTML, Markdown, JSON, CSV, plain text and source code "
    "(UTF-8, UTF-16 or Latin-1)"
)


def _extension(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name.lower()
    if name in ("dockerfile", "makefile", "cmakelists.txt"):
        return name.rsplit(".", 1)[-1]
    return name.rsplit(".", 1)[1] if "." in name.lstrip(".") else ""


def _kind_from_mime(mime_type: str | None) -> Kind | None:
    if not mime_type:
        return None
    mime = mime_type.split(";", 1)[0].strip().lower()
    kind = _MIME_KINDS.get(mime)
    if kind is None and mime.startswith("text/"):
        kind = "text"
    return kind


def _mime_charset(mime_type: str | None) -> str | None:
    if not mime_type:
        return None
    match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", mime_type, re.IGNORECASE)
    return match.group(1) if match else None


def _zip_kind(data: bytes) -> Kind | None:
    """``docx``/``pptx``/``xlsx`` for an Office Open XML ZIP, ``None`` for other ZIPs."""
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except Exception:  # not a readable ZIP: reported as an unsupported archive
        return None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    return None


def _open_zip(data: bytes, limits: Limits) -> zipfile.ZipFile:
    """Open an Office ZIP, refusing ones that are not ZIPs or would unpack too large.

    zipfile stops each part at its declared size, so checking the declarations bounds it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:  # BadZipFile, an unsupported zip version, OSError, …
        raise InvalidFileError(f"The file is not a valid ZIP-based Office document: {exc}") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InvalidFileError(f"The document has too many parts ({len(infos)}).")
    if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
        raise InvalidFileError("The document unpacks to more than 1 GiB; refusing to read it.")
    for info in infos:
        if info.file_size > limits.max_part_bytes:
            raise LimitError(
                f"The document's part {info.filename} unpacks to {size_text(info.file_size)}, "
                f"more than the {size_text(limits.max_part_bytes)} limit per part."
            )
    return archive


def _sniff(data: bytes, charset: str | None, limits: Limits) -> tuple[Kind, str | None]:
    """The kind of an unnamed blob, or raise :class:`UnsupportedFileError`."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf", None
    if data.startswith(_ZIP_SIGNATURES):
        kind = _zip_kind(data)
        if kind is None:
            raise UnsupportedFileError(f"ZIP archives are not supported (supported: {_SUPPORTED}).")
        return kind, None
    if data.startswith(_OLE_SIGNATURE):
        raise UnsupportedFileError(
            "Legacy Microsoft Office files (.doc, .xls, .ppt) are not supported; "
            "save the file as .docx, .xlsx or .pptx."
        )
    for signature, description in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise UnsupportedFileError(
                f"The file looks like a {description}, which is not supported "
                f"(supported: {_SUPPORTED})."
            )
    if len(data) >= 12 and data[4:8] == b"ftyp":
        raise UnsupportedFileError("MP4/QuickTime/HEIF media files are not supported.")
    _check_text_bytes(data, limits)
    text = _decode(data, charset)
    if text is None:
        raise UnsupportedFileError(
            f"The file is binary data of an unknown type (supported: {_SUPPORTED})."
        )
    if re.match(r"\s*(<!doctype\s+html|<html[\s>])", text[:4096], re.IGNORECASE):
        return "html", text
    return "text", text


# ------------------------------------------------------------------------------------------
# Text decoding

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_BINARY_CONTROLS = frozenset(
    [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r\f\v\x1b"]
    + [chr(0x7F)]
    + [chr(c) for c in range(0x80, 0xA0)]
)
_SAMPLE_CHARS = 65_536
# Declared charsets not to honour: not real text encodings, or slow on hostile input.
_UNSAFE_CODECS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape"})


def _looks_binary(text: str) -> bool:
    sample = text[:_SAMPLE_CHARS]
    if not sample:
        return False
    controls = sum(sample.count(c) for c in _BINARY_CONTROLS)
    return controls > len(sample) // 100


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:8192]
    if len(data) % 2 or len(sample) < 4:
        return None
    half = len(sample) // 2
    even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
    for encoding, nuls, other in (
        ("utf-16-le", odd_nuls, even_nuls),
        ("utf-16-be", even_nuls, odd_nuls),
    ):
        if nuls > half * 3 // 10 and other <= half // 20:
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    return None


def _decode_utf8_lenient(data: bytes) -> str | None:
    """UTF-8 text with a few broken bytes (or a cut-off last character), else ``None``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8", errors="replace")
    text = data.decode("utf-8", errors="replace")
    broken = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    # Mostly valid multi-byte sequences: UTF-8 with damage. Otherwise a legacy 8-bit encoding.
    return text if non_ascii - broken > broken * 4 else None


def _decode(data: bytes, charset: str | None) -> str | None:
    """Decode text bytes (BOM, UTF-8, UTF-16 without BOM, a declared charset, Latin-1).

    ``None`` when the bytes do not look like text at all.
    """
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                text = data[len(bom) :].decode(encoding, errors="replace")
            break
    if text is None:  # before UTF-8: ASCII in UTF-16 is valid UTF-8 (full of NULs)
        text = _utf16_without_bom(data)
    if text is None:
        text = _decode_utf8_lenient(data)
    if text is None and charset:
        try:
            if codecs.lookup(charset).name in _UNSAFE_CODECS:
                raise LookupError(charset)
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            text = None
    if text is None:
        text = data.decode("latin-1")
    return None if _looks_binary(text) else text


def _check_text_bytes(data: bytes, limits: Limits) -> None:
    """Refuse text too long for the character limit before decoding it (4 bytes a character
    at most, in every encoding read here)."""
    if len(data) > 4 * limits.max_chars:
        raise LimitError(f"The file's text exceeds the {limits.max_chars:,}-character limit.")


def _html_charset(data: bytes) -> str | None:
    match = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", data[:4096], re.I)
    return match.group(1).decode("ascii") if match else None


# ------------------------------------------------------------------------------------------
# Clean-up shared by every parser

_CONTROL_MAP: dict[int, int | None] = dict.fromkeys(
    [c for c in range(0x20) if chr(c) not in "\t\n\v\f\r"] + [0x7F, 0xFFFE, 0xFFFF]
)
_CONTROL_MAP.update({0x0B: 0x0A, 0x0C: 0x0A})  # vertical tab (PPTX line breaks), form feed
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def _clean(text: str, *, tidy: bool = True) -> str:
    """Normalise newlines, drop control characters (Postgres refuses NUL) and lone surrogates;
    with ``tidy``, also trailing spaces and runs of blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL_MAP)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    if tidy:
        text = _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("\n", text))
        return text.strip()
    return text.strip("\n").rstrip()


def _pages(items: Iterable[tuple[str, int | None]], *, tidy: bool = True) -> list[Page]:
    pages = []
    for text, number in items:
        cleaned = _clean(text, tidy=tidy)
        if cleaned.strip():
            pages.append(Page(text=cleaned, page=number))
    return pages


# ------------------------------------------------------------------------------------------
# PDF

_PDFIUM_LOCK = threading.Lock()


def _pdf_pypdfium2(data: bytes, budget: _Budget) -> list[tuple[str, int | None]]:
    import pypdfium2

    out: list[tuple[str, int | None]] = []
    with _PDFIUM_LOCK:
        pdf = pypdfium2.PdfDocument(data)
        try:
            for index in range(min(len(pdf), MAX_PAGES)):
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    try:  # bounded: full Unicode (get_text_range is UCS-2 only)
                        budget.page(textpage.count_chars(), index + 1)
                        text = budget.take(str(textpage.get_text_bounded()))
                        out.append((text, index + 1))
                    finally:
                        textpage.close()
                finally:
                    page.close()
        finally:
            pdf.close()
    return out


def _pdf_pypdf(data: bytes, budget: _Budget) -> list[tuple[str, int | None]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")
    out: list[tuple[str, int | None]] = []
    for index, page in enumerate(reader.pages):
        if index >= MAX_PAGES:
            break
        text = page.extract_text() or ""
        budget.page(len(text), index + 1)
        out.append((budget.take(text), index + 1))
    return out


def _parse_pdf(data: bytes, limits: Limits) -> list[Page]:
    try:
        items = _pdf_pypdfium2(data, _Budget(limits))
    except (LimitError, MemoryError):
        raise  # the fallback would only hit them again
    except Exception as first:
        try:
            items = _pdf_pypdf(data, _Budget(limits))
        except (LimitError, MemoryError):
            raise
        except Exception as exc:
            raise InvalidFileError(
                f"The PDF could not be read (corrupt or encrypted): {first}; {exc}"
            ) from exc
    pages = _pages(items)
    if not pages:
        raise InvalidFileError(
            "The PDF contains no extractable text (a scanned document? OCR is not supported)."
        )
    return pages


# ------------------------------------------------------------------------------------------
# Office Open XML


def _parse_docx(data: bytes, limits: Limits) -> list[Page]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _open_zip(data, limits)
    document = docx.Document(io.BytesIO(data))
    budget = _Budget(limits)
    blocks: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            blocks.append(budget.take(item.text))
        elif isinstance(item, Table):
            blocks.append("")
            blocks.extend(budget.take(row) for row in _docx_table_rows(item))
            blocks.append("")
    return _pages([("\n".join(blocks), None)])


def _docx_table_rows(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells: list[str] = []
        previous: object = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell repeats across the columns it spans
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield "\t".join(cells)


def _parse_pptx(data: bytes, limits: Limits) -> list[Page]:
    import pptx
    from pptx.shapes.base import BaseShape
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.shapes.group import GroupShape

    _open_zip(data, limits)
    presentation = pptx.Presentation(io.BytesIO(data))
    budget = _Budget(limits)
    items: list[tuple[str, int | None]] = []
    for number, slide in enumerate(presentation.slides, start=1):
        if number > MAX_PAGES:
            break
        parts: list[str] = []
        stack: list[BaseShape] = list(reversed(list(slide.shapes)))
        while stack:
            shape = stack.pop()
            if isinstance(shape, GroupShape):
                stack.extend(reversed(list(shape.shapes)))
            elif shape.has_text_frame:
                parts.append(shape.text_frame.text)  # type: ignore[attr-defined]
            elif isinstance(shape, GraphicFrame) and shape.has_table:
                for row in shape.table.rows:
                    cells = [" ".join(cell.text.split()) for cell in row.cells]
                    if any(cells):
                        parts.append("\t".join(cells))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                parts.append("Notes: " + notes.text)
        items.append((budget.take("\n".join(parts)), number))
    return _pages(items)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return " ".join(str(value).split())


def _parse_xlsx(data: bytes, limits: Limits) -> list[Page]:
    import openpyxl

    _open_zip(data, limits)
    chars = _Budget(limits)
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    budget = MAX_SHEET_CELLS
    items: list[tuple[str, int | None]] = []
    try:
        for number, sheet in enumerate(workbook.worksheets, start=1):
            if number > MAX_PAGES or budget <= 0:
                break
            sheet.reset_dimensions()  # don't trust (or pad rows to) the declared size
            lines: list[str] = []
            for row in sheet.iter_rows(values_only=True):
                budget -= max(1, len(row))
                if budget < 0:
                    break
                cells = [_cell_text(value) for value in row]
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    lines.append(chars.take("\t".join(cells)))
            if lines:
                items.append((f"# {sheet.title}\n\n" + "\n".join(lines), number))
    finally:
        workbook.close()
    return _pages(items)


# ------------------------------------------------------------------------------------------
# HTML

_SKIPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas"}
)
_BLOCK_TAGS = frozenset(
    """
    address article aside blockquote body caption center dd details dialog dir div dl dt
    fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr
    html legend li main menu nav ol p pre section summary table tbody tfoot thead title tr ul
    """.split()  # noqa: SIM905
)
_PRE_TAGS = frozenset({"pre", "textarea", "listing", "plaintext", "xmp"})
_CELL_TAGS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


class _TextBuilder:
    """Accumulates visible text, collapsing whitespace the way a browser lays it out."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.at_line_start = True

    def text(self, text: str, pre: bool) -> None:
        if not pre:
            text = _SPACES.sub(" ", text)
            if self.at_line_start or (self.parts and self.parts[-1].endswith((" ", "\t"))):
                text = text.lstrip(" ")
        if text:
            self.parts.append(text)
            self.at_line_start = text.endswith("\n")

    def newline(self, force: bool = False) -> None:
        if force or not self.at_line_start:
            self.parts.append("\n")
            self.at_line_start = True

    def cell(self) -> None:
        if not self.at_line_start:
            self.parts.append("\t")


def _hidden(name: str, attributes: Mapping[str, str]) -> bool:
    if name in _SKIPPED_TAGS or "hidden" in attributes:
        return True
    return bool(_HIDDEN_STYLE.search(attributes.get("style") or ""))


def _html_to_text(markup: str) -> str:
    """Visible text of an HTML document, one line per block element.

    lxml (libxml2) rather than ``html.parser``: CPython's parser is quadratic on some malformed
    input (200 KB of ``<a<a<a…`` took 73 s on 3.11.7) and BeautifulSoup's tree building costs
    ~60 µs a tag. libxml2 stops nesting at depth 2048; text deeper than that is dropped.
    """
    from lxml import etree
    from lxml import html as lxml_html

    # lxml refuses str input that declares an encoding, and NUL bytes.
    markup = _XML_DECLARATION.sub("", markup, count=1).translate(_CONTROL_MAP)
    parser = lxml_html.HTMLParser(
        remove_comments=True, remove_pis=True, no_network=True, huge_tree=True
    )
    try:
        root = lxml_html.document_fromstring(markup, parser=parser)
    except etree.ParserError:  # "Document is empty"
        return ""
    out = _TextBuilder()
    pre = 0
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        if not isinstance(element.tag, str):  # entities and the like
            continue
        name = element.tag.lower()
        hidden = _hidden(name, element.attrib)
        if event == "start":
            if hidden:
                walker.skip_subtree()
                continue
            if name == "br":
                out.newline(force=True)
            elif name in _CELL_TAGS:
                out.cell()
            elif name in _BLOCK_TAGS:
                out.newline()
            pre += name in _PRE_TAGS
            if element.text:
                out.text(element.text, pre > 0)
        else:
            if not hidden:
                pre -= name in _PRE_TAGS
                if name in _BLOCK_TAGS:
                    out.newline()
            if element.tail:
                out.text(element.tail, pre > 0)
    return "".join(out.parts)


# ------------------------------------------------------------------------------------------
# Text formats


def _parse_text(
    data: bytes, kind: Kind, charset: str | None, decoded: str | None, limits: Limits
) -> list[Page]:
    if kind == "html" and charset is None:
        charset = _html_charset(data)
    if decoded is None:
        _check_text_bytes(data, limits)
    text = decoded if decoded is not None else _decode(data, charset)
    if text is None:
        raise InvalidFileError("The file does not contain text (it looks like binary data).")
    if kind == "html":
        return _pages([(_Budget(limits).take(_html_to_text(text)), None)])
    _Budget(limits).take(text)
    if kind == "json":
        with contextlib.suppress(ValueError, RecursionError):  # else index the text as it is
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return _pages([(text, None)], tidy=False)


# ------------------------------------------------------------------------------------------


def extract_text(
    filename: str, data: bytes, mime_type: str | None = None, limits: Limits | None = None
) -> list[Page]:
    """Extract the text of a file as pages (``page`` numbers for PDF, PPTX and XLSX).

    Raises :class:`UnsupportedFileError` for types that cannot be read,
    :class:`InvalidFileError` for corrupt files or files without any text, and
    :class:`LimitError` for files that decode to more than ``limits`` allow.
    """
    limits = limits or Limits()
    if not data:
        raise InvalidFileError("The file is empty.")
    extension = _extension(filename)
    if extension in _LEGACY_OFFICE:
        raise UnsupportedFileError(
            f"{_LEGACY_OFFICE[extension]} files are not supported; save the file as "
            f"a .{extension}x file."
        )
    charset = _mime_charset(mime_type)
    kind = _EXTENSION_KINDS.get(extension)
    decoded: str | None = None
    if kind is None:
        # No telling extension: trust the bytes, and the MIME type only to tell text apart.
        kind, decoded = _sniff(data, charset, limits)
        mime_kind = _kind_from_mime(mime_type)
        if kind == "text" and mime_kind is not None and mime_kind != "text":
            kind = mime_kind
    try:
        if kind == "pdf":
            pages = _parse_pdf(data, limits)
        elif kind == "docx":
            pages = _parse_docx(data, limits)
        elif kind == "pptx":
            pages = _parse_pptx(data, limits)
        elif kind == "xlsx":
            pages = _parse_xlsx(data, limits)
        else:
            pages = _parse_text(data, kind, charset, decoded, limits)
    except (ParseError, MemoryError):
        raise
    except Exception as exc:  # parsers of hostile input can raise nearly anything
        raise InvalidFileError(f"The {kind.upper()} file could not be read: {exc}") from exc
    if not pages:
        raise InvalidFileError("The file contains no extractable text.")
    return pages
