"""The command line: ``serve`` on the embedded database (first key, restarts), ``--help``
everywhere, and the ``keys`` lifecycle against a running server."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from assistd import cli
from tests.conftest import Database, ServerProcess, start_server, stop_server

KEY_RE = re.compile(r"sk-assistd-[A-Za-z0-9_-]+")
BLOB = bytes(range(256)) * 8 + "é☃\n".encode()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _stop_embedded_postgres(pgdata: Path) -> None:
    """Last-resort cleanup when a failed test left the embedded Postgres running."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)


def snapshot(api: str, key: str, ids: dict[str, str]) -> dict[str, object]:
    """Everything the objects look like on the wire."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as h:
        out: dict[str, object] = {
            "assistant": h.get(f"/assistants/{ids['assistant']}").json(),
            "assistants": h.get("/assistants").json(),
            "thread": h.get(f"/threads/{ids['thread']}").json(),
            "messages": h.get(f"/threads/{ids['thread']}/messages").json(),
            "file": h.get(f"/files/{ids['file']}").json(),
            "files": h.get("/files").json(),
        }
        content = h.get(f"/files/{ids['file']}/content")
        assert content.status_code == 200
        out["content"] = content.content
    return out


def test_embedded_first_start_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"ASSISTD_DATA_DIR": str(data_dir)}
    unset = ["ASSISTD_DATABASE_URL", "ASSISTD_STORAGE__DIR"]
    servers: list[ServerProcess] = []
    try:
        first = start_server(env, tmp_path / "first.log", unset=unset)
        servers.append(first)
        log = first.log()
        keys = KEY_RE.findall(log)
        assert len(keys) == 1, log
        key = keys[0]
        assert "serving on" in log
        assert (data_dir / "pgdata" / "PG_VERSION").exists()

        client = OpenAI(base_url=first.api, api_key=key, max_retries=0)
        assistant = client.beta.assistants.create(
            model="gpt-4o",
            name="Math Tutor",
            instructions="You are a personal math tutor.",
            tools=[{"type": "code_interpreter"}],
            metadata={"team": "maths"},
        )
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "I need to solve 3x + 11 = 14."}],
            metadata={"k": "v"},
        )
        client.beta.threads.messages.create(thread.id, role="user", content="Can you help?")
        uploaded = client.files.create(file=("blob.bin", io.BytesIO(BLOB)), purpose="assistants")
        assert client.files.content(uploaded.id).content == BLOB
        # Bytes live in the data directory's file storage.
        assert any(p.is_file() for p in (data_dir / "files").rglob("*"))
        ids = {"assistant": assistant.id, "thread": thread.id, "file": uploaded.id}
        before = snapshot(first.api, key, ids)

        stop_server(first)
        servers.remove(first)
        assert first.process.returncode == 0, first.log()
        # The last process using the embedded Postgres stops it on exit.
        assert not (data_dir / "pgdata" / "postmaster.pid").exists()

        second = start_server(env, tmp_path / "second.log", unset=unset)
        servers.append(second)
        log = second.log()
        assert KEY_RE.search(log) is None, log
        assert "first API key" not in log
        assert "serving on" in log

        after = snapshot(second.api, key, ids)
        assert after == before
        assert after["content"] == BLOB
        client = OpenAI(base_url=second.api, api_key=key, max_retries=0)
        texts = [
            m.content[0].text.value  # type: ignore[union-attr]
            for m in client.beta.threads.messages.list(thread.id, order="asc")
        ]
        assert texts == ["I need to solve 3x + 11 = 14.", "Can you help?"]
        assert client.beta.assistants.retrieve(assistant.id).name == "Math Tutor"
        assert client.files.content(uploaded.id).content == BLOB

        stop_server(second)
        servers.remove(second)
        assert second.process.returncode == 0, second.log()
    finally:
        for s in servers:
            stop_server(s)
        _stop_embedded_postgres(data_dir / "pgdata")


# ---- --help ----------------------------------------------------------------------------------


def test_module_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for word in ("Usage:", "--help", "serve", "migrate", "keys"):
        assert word in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("serve",), ["--host", "--port"]),
        (("migrate",), ["migrat"]),
        (("keys",), ["create", "list", "revoke"]),
        (("keys", "create"), ["--project", "--name"]),
        (("keys", "list"), ["list"]),
        (("keys", "revoke"), ["key_id"]),
    ],
    ids=["serve", "migrate", "keys", "keys-create", "keys-list", "keys-revoke"],
)
def test_command_help(args: tuple[str, ...], expected: list[str]) -> None:
    # In-process (the same Typer app ``python -m assistd`` runs) to keep the suite fast.
    result = CliRunner().invoke(cli.app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Usage:" in out
    assert "--help" in out
    for word in expected:
        assert word.lower() in out.lower(), out


# ---- keys --------------------------------------------------------------------------------------


def test_keys_create_list_revoke(server: ServerProcess, database: Database, tmp_path: Path) -> None:
    env = {"ASSISTD_DATABASE_URL": database.url, "ASSISTD_DATA_DIR": str(tmp_path)}
    project = f"p2-{uuid.uuid4().hex[:8]}"
    label = f"ci-{uuid.uuid4().hex[:6]}"

    created = run_cli("keys", "create", "--project", project, "--name", label, env=env)
    assert created.returncode == 0, created.stderr
    keys = KEY_RE.findall(created.stdout)
    assert len(keys) == 1, created.stdout
    secret = keys[0]
    assert project in created.stdout

    client = OpenAI(base_url=server.api, api_key=secret, max_retries=0)
    assistant = client.beta.assistants.create(model="gpt-4o", name="from the CLI key")
    assert [a.id for a in client.beta.assistants.list()] == [assistant.id]

    listed = run_cli("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout  # only hints are ever shown
    rows = [line.split("\t") for line in listed.stdout.splitlines() if f"\t{project}\t" in line]
    assert len(rows) == 1, listed.stdout
    key_id, row_project, hint, state, name = rows[0]
    assert key_id.startswith("key_")
    assert row_project == project
    assert state == "active"
    assert name == label
    assert hint.startswith(secret[:12])
    assert hint.endswith(secret[-4:])

    revoked = run_cli("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert key_id in revoked.stdout

    # The session server does not cache keys, so the revocation takes effect at once.
    with pytest.raises(openai.AuthenticationError) as info:
        client.beta.assistants.retrieve(assistant.id)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"

    listed = run_cli("keys", "list", env=env)
    rows = [line.split("\t") for line in listed.stdout.splitlines() if f"\t{project}\t" in line]
    assert [row[3] for row in rows] == ["revoked"]

    again = run_cli("keys", "revoke", key_id, env=env)
    assert again.returncode == 1
    assert key_id in again.stderr
    unknown = run_cli("keys", "revoke", "key_doesnotexist", env=env)
    assert unknown.returncode == 1

    # A second key of the same project sees the project's objects.
    second = KEY_RE.findall(run_cli("keys", "create", "--project", project, env=env).stdout)
    assert len(second) == 1
    assert second[0] != secret
    client2 = OpenAI(base_url=server.api, api_key=second[0], max_retries=0)
    assert client2.beta.assistants.retrieve(assistant.id).name == "from the CLI key"
