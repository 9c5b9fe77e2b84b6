"""A process's memory as the kernel reports it, for tests that bound what input costs."""

from __future__ import annotations

from pathlib import Path


def status_kb(pid: int | str, field: str) -> int:
    """A ``VmRSS``/``VmHWM``/… line of ``/proc/<pid>/status`` (``pid`` may be ``"self"``), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int | str) -> None:
    """``VmHWM`` starts again from the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
