"""Where an input file lands under /mnt/data: its own name, made safe for the sandbox.

A name comes from an upload and may be anything: a path, control characters, a leading dot
(the sandbox does not list hidden files as outputs) or more bytes than a file name may have.
"""

from __future__ import annotations

import posixpath
import re

DATA_DIR = "/mnt/data"
MAX_NAME_BYTES = 120
"""Well under the file systems' 255 bytes, so that names with the file id added still fit."""
MAX_EXTENSION_CHARS = 16
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def _shorten(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def _fit(stem: str, extension: str, suffix: str = "") -> str:
    room = MAX_NAME_BYTES - len((suffix + extension).encode())
    return _shorten(stem, room).rstrip() + suffix + extension


def data_path(filename: str, file_id: str, taken: set[str]) -> str:
    """The path under /mnt/data for the file ``file_id`` called ``filename``: the base name
    without control characters, at most ``MAX_NAME_BYTES`` long (the extension kept), not
    hidden, and with the file id added when a name in ``taken`` clashes (it is added there)."""
    name = _UNSAFE.sub("_", posixpath.basename(filename.replace("\\", "/"))).strip()
    if name in ("", ".", ".."):
        name = file_id
    elif name.startswith("."):
        name = file_id + name
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem and 0 < len(extension) <= MAX_EXTENSION_CHARS):
        stem, extension = name, ""
    else:
        extension = "." + extension
    name = _fit(stem, extension)
    if name in taken:
        name = _fit(stem, extension, "-" + file_id)
    taken.add(name)
    return f"{DATA_DIR}/{name}"
