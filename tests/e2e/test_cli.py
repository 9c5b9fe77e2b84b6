"""The command line a newcomer reads: ``--version``, ``-h`` beside ``--help`` on every
command, each option's default and environment variable in its help, ``keys list`` under a
header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistd import __version__, cli
from tests.conftest import Database
from tests.e2e.test_serve import run_cli


def help_text(*args: str) -> str:
    # In-process (the Typer app ``python -m assistd`` runs); wide, so no option is wrapped.
    result = CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"assistd {__version__}\n"


@pytest.mark.parametrize(
    "command",
    [(), ("serve",), ("worker",), ("migrate",), ("keys",), ("keys", "list"), ("sandbox", "build")],
    ids=lambda c: " ".join(c) or "assistd",
)
def test_h_is_help(command: tuple[str, ...]) -> None:
    assert help_text(*command, "-h") == help_text(*command, "--help")
    assert "Usage:" in help_text(*command, "-h")


def option_line(text: str, option: str) -> str:
    """The help's row of ``option`` (rows may wrap: the option's row and what follows it up
    to the next option)."""
    found = re.search(rf"{re.escape(option)}\b.*?(?=\n\s*│\s+--|\n╰)", text, re.S)
    assert found is not None, text
    return " ".join(found.group(0).split())


def test_serve_help_names_defaults_and_variables() -> None:
    text = help_text("serve", "-h")
    expected = {
        "--host": ("ASSISTD_HOST", "127.0.0.1"),
        "--port": ("ASSISTD_PORT", "8000"),
        "--processes": ("ASSISTD_PROCESSES", "1"),
        "--worker": ("ASSISTD_RUN_WORKER", "worker"),
        "--log-format": ("ASSISTD_LOG_FORMAT", "auto"),
    }
    for option, (variable, default) in expected.items():
        row = option_line(text, option)
        assert f"env var: {variable}" in row, row
        assert f"default: {default}" in row, row
    worker = option_line(help_text("worker", "-h"), "--log-format")
    assert "env var: ASSISTD_LOG_FORMAT" in worker, worker
    create = option_line(help_text("keys", "create", "-h"), "--project")
    assert "default: default" in create, create


def test_keys_list_has_a_header(database: Database, tmp_path: Path) -> None:
    env = {"ASSISTD_DATABASE_URL": database.url, "ASSISTD_DATA_DIR": str(tmp_path)}
    assert run_cli("keys", "create", "--project", "listed", env=env).returncode == 0
    done = run_cli("keys", "list", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split("\t") == ["ID", "PROJECT", "HINT", "STATE", "NAME"]
    assert any(line.split("\t")[1] == "listed" for line in lines[1:]), done.stdout
    assert all(line.startswith("key_") for line in lines[1:]), done.stdout
