"""Wall-clock time as the wire shows it: integer unix seconds."""

from __future__ import annotations

import time


def now() -> int:
    """Current unix time in whole seconds."""
    return int(time.time())
