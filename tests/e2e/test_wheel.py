"""The built wheel, installed in a fresh virtual environment away from the checkout, migrates
a fresh database, serves, completes a run, and carries the sandbox image's build context and
the embedding tokenizer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import httpx
from openai import OpenAI

from assistd.sandbox.build import context_dir, context_hash
from tests.conftest import Database, ServerProcess, free_port, stop_server
from tests.support.scripted_chat import ScriptedChatServer

ROOT = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"sk-assistd-[A-Za-z0-9_-]+")


def _install_wheel(tmp_path: Path) -> Path:
    """Build the wheel and install it alone in a new venv that borrows this venv's
    dependencies through a ``.pth`` file; return the venv's ``bin`` directory."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("assistd-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-index", str(wheel)],
        check=True,
        timeout=120,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A path listed in a .pth is appended after the venv's own site-packages, and the .pth
    # files inside it (this venv's editable finder for the checkout) are not processed.
    (Path(site) / "suite_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _clean_env(bin_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ASSISTD_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def test_wheel_installs_and_serves(tmp_path: Path, pg_root: str, chat: ScriptedChatServer) -> None:
    bin_dir = _install_wheel(tmp_path)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    url = Database(pg_root).new_database(f"wheel_{uuid.uuid4().hex[:10]}")
    env = _clean_env(
        bin_dir,
        {
            "ASSISTD_DATABASE_URL": url,
            "ASSISTD_DATA_DIR": str(tmp_path / "data"),
            "ASSISTD_SANDBOX__POOL_SIZE": "0",
            "OPENAI_BASE_URL": chat.base_url,
            "OPENAI_API_KEY": "sk-scripted",
        },
    )

    probe = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import assistd, assistd.core.migrate as m; from assistd.sandbox import build as b;"
            "c = b.context_dir(); print(assistd.__file__); print(m._migrations_dir());"
            "print(c); print(b.context_hash(c));"
            "from assistd.llm import embeddings as e; print(e._TOKENIZER_FILE);"
            "print(e.LocalMiniLM().count_tokens('hello wheel'))",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    venv = bin_dir.parent
    assert all(Path(p).is_relative_to(venv) for p in probe[:3]), probe
    assert (Path(probe[1]) / "env.py").is_file(), "the migrations are not in the wheel"
    assert probe[3] == context_hash(context_dir()), "the shipped sandbox-image/ differs"
    # The MiniLM tokenizer is package data of the wheel, not a file of another package.
    assert Path(probe[4]).is_relative_to(Path(probe[0]).parent), probe
    assert probe[5] == "4", probe

    help_out = subprocess.run(
        [str(bin_dir / "assistd"), "sandbox", "build", "--help"],
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_out.returncode == 0, help_out.stderr
    assert "--local-base" in help_out.stdout

    port = free_port()
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop_server
    proc = subprocess.Popen(
        [str(bin_dir / "assistd"), "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log_path, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, server.log()
            try:
                if httpx.get(server.base_url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"server did not start:\n{server.log()}")
        made = subprocess.run(
            [str(bin_dir / "assistd"), "keys", "create", "--project", "wheel"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        keys = KEY_RE.findall(made.stdout)
        assert len(keys) == 1, made.stdout + made.stderr
        ready = httpx.get(server.base_url + "/ready", timeout=10)
        assert ready.status_code == 200, ready.text

        client = OpenAI(base_url=server.api, api_key=keys[0], max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "hello from the wheel"}]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
        )
        assert run.status == "completed", run.last_error
        assert "database migrated from an empty schema" in server.log()
        messages = client.beta.threads.messages.list(thread.id, order="desc", limit=1)
        reply = messages.data[0].content[0]
        assert reply.type == "text"
        assert reply.text.value == "You said: hello from the wheel"
        client.close()
    finally:
        stop_server(server)
