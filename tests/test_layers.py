"""The import layering (pyproject.toml's import-linter contracts) holds, and the contracts catch
the upward imports they were written against."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts on the package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold() -> None:
    done = _lint(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _with_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package with ``line`` added to ``module`` (a path under assistd/)."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "assistd",
        src / "assistd",
        ignore=shutil.ignore_patterns("__pycache__", "static"),
    )
    target = src / "assistd" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return src


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    src = _with_import(tmp_path, "runs/router.py", "from assistd.worker import loop  # noqa")
    done = _lint(src)
    assert done.returncode == 1, done.stdout
    assert "assistd.runs.router -> assistd.worker.loop" in done.stdout


def test_a_resource_importing_the_run_side_breaks_the_contracts(tmp_path: Path) -> None:
    src = _with_import(tmp_path, "threads/service.py", "from assistd.runs import events  # noqa")
    done = _lint(src)
    assert done.returncode == 1, done.stdout
    assert "assistd.threads.service -> assistd.runs.events" in done.stdout


def test_a_service_importing_fastapi_breaks_the_contracts(tmp_path: Path) -> None:
    src = _with_import(tmp_path, "files/service.py", "import fastapi  # noqa")
    done = _lint(src)
    assert done.returncode == 1, done.stdout
    assert "assistd.files.service -> fastapi" in done.stdout
