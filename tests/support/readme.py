"""The README's code blocks, for the tests that run them exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(marker: str, language: str) -> list[str]:
    """The ``language`` code blocks between ``<!-- marker:start -->`` and
    ``<!-- marker:end -->``, in order."""
    text = README.read_text()
    section = text.split(f"<!-- {marker}:start -->", 1)[1]
    section = section.split(f"<!-- {marker}:end -->", 1)[0]
    return re.findall(rf"```{re.escape(language)}\n(.*?)```", section, re.S)
