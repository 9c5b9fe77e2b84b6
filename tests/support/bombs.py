"""Small documents that decode into very large content, for hostile-input tests and the bench.

Each is a valid file of its kind: a parser that trusts it inflates a few hundred kilobytes
into tens or hundreds of megabytes of text.
"""

from __future__ import annotations

import io
import zipfile
import zlib

_LINE = b"(" + b"A" * 240 + b") Tj T*\n"


def pdf_bomb(inflated_bytes: int = 50 * 1024 * 1024) -> bytes:
    """A one-page PDF whose text content stream inflates to ``inflated_bytes``."""
    body = b"BT /F1 12 Tf 14 TL 72 720 Td\n"
    count = max(1, inflated_bytes // len(_LINE))
    packer = zlib.compressobj(9)
    parts = [packer.compress(body)]
    block = _LINE * 4096
    for _ in range(count // 4096):
        parts.append(packer.compress(block))
    parts.append(packer.compress(_LINE * (count % 4096) + b"ET\n"))
    parts.append(packer.flush())
    stream = b"".join(parts)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


_DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_PARAGRAPH = b"<w:p><w:r><w:t>" + b"word " * 200 + b"</w:t></w:r></w:p>"


def docx_bomb(xml_bytes: int = 100 * 1024 * 1024) -> bytes:
    """A DOCX whose ``word/document.xml`` is ``xml_bytes`` of paragraphs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _DOCX_TYPES)
        archive.writestr("_rels/.rels", _DOCX_RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(
                f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}">'.encode()
            )
            part.write(b"<w:body>")
            block = _PARAGRAPH * 1024
            for _ in range(max(1, xml_bytes // len(block))):
                part.write(block)
            part.write(b"</w:body></w:document>")
    return out.getvalue()
