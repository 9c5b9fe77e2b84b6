"""What an operator sees: ``assistd serve`` on a terminal (a pseudo-terminal here) logs
readable lines, one per request and one per run end, and ``--log-format json`` makes every
line JSON even on a terminal; ``/metrics`` counts tokens per model and adds up the processes
of ``serve --processes 2``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import SANDBOX_INSTANCE, free_port
from tests.e2e.test_metrics import sample
from tests.e2e.test_serve import KEY_RE, _stop_embedded_postgres
from tests.support.scripted_chat import ScriptedChatServer

ZONED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class TerminalServer:
    """``python -m assistd serve`` with a pseudo-terminal as stdin, stdout and stderr."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        master, slave = pty.openpty()
        self._master = master
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistd", "serve", "--port", str(self.port), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        self._buffer = bytearray()
        self._lock = threading.Lock()
        # Drained all the time: a full terminal buffer would block the server's writes.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the last writer closed the terminal
                return
            if not data:
                return
            with self._lock:
                self._buffer.extend(data)

    def output(self) -> str:
        """Everything written so far, with the terminal's CR LF as LF."""
        with self._lock:
            return bytes(self._buffer).decode(errors="replace").replace("\r\n", "\n")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if check(out):
                return out
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-4000:]}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        with contextlib.suppress(OSError):
            os.close(self._master)
        return self.output()


def base_env(data_dir: Path) -> dict[str, str]:
    """The environment without any assistd or model backend variable of the test session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASSISTD_", "OPENAI_", "AZURE_OPENAI_"))
    }
    env.update(
        {
            "ASSISTD_DATA_DIR": str(data_dir),
            "ASSISTD_SANDBOX__POOL_SIZE": "0",
            "ASSISTD_SANDBOX__INSTANCE": SANDBOX_INSTANCE,
        }
    )
    return env


@contextlib.contextmanager
def terminal_server(env: dict[str, str], *args: str) -> Iterator[TerminalServer]:
    server = TerminalServer(env, *args)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        _stop_embedded_postgres(Path(env["ASSISTD_DATA_DIR"]) / "pgdata")


def run_once(client: OpenAI, reply: str) -> tuple[str, str]:
    """Create an assistant and complete one run; the assistant request's id and the run id."""
    raw = client.beta.assistants.with_raw_response.create(model="gpt-4o", name="logged")
    assistant = raw.parse()
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "#script " + json.dumps({"reply": reply})}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    return raw.headers["x-request-id"], run.id


def test_terminal_first_start_is_readable(tmp_path: Path, chat: ScriptedChatServer) -> None:
    """A first start on a terminal: the key banner, one line for the migrations, an access
    line per request, a line per run end and per ingested file, no ``uvicorn.error``. The
    backend is Azure configured with the SDK's ``AZURE_OPENAI_API_VERSION``, which must be
    read. ``/metrics`` (one process) counts the run's tokens, by project too when asked."""
    env = base_env(tmp_path / "data")
    env.update(
        {
            "AZURE_OPENAI_ENDPOINT": chat.base_url.removesuffix("/v1"),
            "AZURE_OPENAI_API_KEY": "azure-secret",
            "AZURE_OPENAI_API_VERSION": "2024-10-21",
            "ASSISTD_METRICS__PER_PROJECT": "true",
        }
    )
    with terminal_server(env) as server:
        keys = KEY_RE.findall(server.output())
        assert len(keys) == 1, server.output()
        with OpenAI(base_url=server.base_url + "/v1", api_key=keys[0], max_retries=0) as client:
            request_id, run_id = run_once(client, "logged on a terminal")
            store = client.vector_stores.create(name="logged")
            text = io.BytesIO(b"The access log has one line per request.\n")
            upload = client.files.create(file=("notes.txt", text), purpose="assistants")
            added = client.vector_stores.files.create_and_poll(
                vector_store_id=store.id, file_id=upload.id, poll_interval_ms=50
            )
            assert added.status == "completed", added.last_error
        ended = re.compile(
            rf"INFO +assistd\.engine\.executor run {run_id} completed model=gpt-4o "
            r"tokens=(\d+)\+(\d+) [\d.]+ ms"
        )
        ingested = re.compile(
            rf"INFO +assistd\.vector_stores\.ingest file {upload.id} in {store.id} completed "
            r"chunks=1 usage_bytes=\d+ [\d.]+ ms"
        )
        server.wait_for(lambda out: ended.search(out) is not None, "the run-end line")
        server.wait_for(lambda out: ingested.search(out) is not None, "the ingestion line")
        body = httpx.get(server.base_url + "/metrics").text
    out = server.stop()

    access = [line for line in out.splitlines() if request_id in line]
    assert len(access) == 1, out
    assert re.search(r"INFO +assistd\.access POST /v1/assistants 200 [\d.]+ ms \[req_", access[0])
    found = ended.search(out)
    assert found is not None
    prompt, completion = int(found.group(1)), int(found.group(2))
    assert prompt > 0, found.group(0)
    assert completion > 0, found.group(0)
    assert sample(body, "assistd_tokens_total", model="gpt-4o", type="prompt") == prompt
    assert sample(body, "assistd_tokens_total", model="gpt-4o", type="completion") == completion
    by_project = [
        line for line in body.splitlines() if line.startswith("assistd_project_tokens_total{")
    ]
    assert len(by_project) == 2, by_project
    assert all('project="proj_' in line for line in by_project), by_project

    assert "uvicorn.error" not in out
    assert "no model backend" not in out  # Azure is configured
    assert out.count("database migrated from an empty schema to") == 1, out
    assert "Running upgrade" not in out
    # Every line is a log line or part of the key banner: no migration docstrings.
    banner = ("assistd: ", "API key for project 'default'", "    sk-assistd-")
    for line in out.splitlines():
        if line.strip():
            assert STAMP.match(line) or line.startswith(banner), line


def test_json_logs_on_a_terminal_and_metrics_of_two_processes(
    tmp_path: Path, chat: ScriptedChatServer
) -> None:
    """``--log-format json`` wins over the terminal; with ``--processes 2`` every line of both
    processes is JSON, and one scrape of ``/metrics`` counts the requests both served and
    the tokens of the run (by project too, as ``ASSISTD_METRICS__PER_PROJECT`` asks)."""
    env = base_env(tmp_path / "data")
    env.update(
        {
            "OPENAI_BASE_URL": chat.base_url,
            "OPENAI_API_KEY": "sk-scripted",
            "ASSISTD_METRICS__PER_PROJECT": "true",
        }
    )
    with terminal_server(env, "--log-format", "json", "--processes", "2") as server:
        records = [json.loads(line) for line in server.output().splitlines() if line.strip()]
        banner = [r for r in records if "api_key" in r]
        assert len(banner) == 1, server.output()
        key = banner[0]["api_key"]
        assert KEY_RE.fullmatch(key)
        api = server.base_url + "/v1"
        with OpenAI(base_url=api, api_key=key, max_retries=0) as client:
            request_id, run_id = run_once(client, "logged as json")
        # Each on a connection of its own, so the kernel spreads them over both processes.
        for _ in range(12):
            listed = httpx.get(api + "/assistants", headers={"Authorization": f"Bearer {key}"})
            assert listed.status_code == 200
        server.wait_for(
            lambda out: out.count('"path": "/v1/assistants", "status": 200') >= 13,
            "the access lines",
        )
        scrape = httpx.get(server.base_url + "/metrics")
        assert scrape.status_code == 200
        body = scrape.text
        server.wait_for(lambda out: f'"run_id": "{run_id}"' in out, "the run's lines")
    out = server.stop()

    records = []
    for line in out.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)  # every line, of the supervisor and both processes
        assert ZONED.fullmatch(record["time"]), record
        assert "color_message" not in record, record
        assert record.get("request_id", "set"), record  # present only when set
        assert record.get("run_id", "set"), record
        assert record["logger"] != "uvicorn.error", record
        records.append(record)
    mine = [r for r in records if r.get("request_id") == request_id]
    assert [(r["logger"], r["method"], r["path"], r["status"]) for r in mine] == [
        ("assistd.access", "POST", "/v1/assistants", 200)
    ], mine
    assert mine[0]["duration_ms"] >= 0
    ended = [
        r for r in records if r.get("run_id") == run_id and r["logger"] == "assistd.engine.executor"
    ]
    assert len(ended) == 1, ended
    assert ended[0]["status"] == "completed"
    assert ended[0]["model"] == "gpt-4o"
    assert ended[0]["prompt_tokens"] > 0
    assert ended[0]["completion_tokens"] > 0
    assert "error_code" not in ended[0]

    # Both processes served the listing, and the one scrape counts every request.
    listing = [
        r
        for r in records
        if r["logger"] == "assistd.access" and (r["method"], r["path"]) == ("GET", "/v1/assistants")
    ]
    assert len({r["pid"] for r in listing}) == 2, listing
    assert sample(body, "assistd_http_requests_total", method="GET", route="/v1/assistants") == 12
    assert sample(body, "assistd_tokens_total", model="gpt-4o", type="prompt") == float(
        ended[0]["prompt_tokens"]
    )
    assert sample(body, "assistd_tokens_total", model="gpt-4o", type="completion") == float(
        ended[0]["completion_tokens"]
    )
    by_project = [
        line for line in body.splitlines() if line.startswith("assistd_project_tokens_total{")
    ]
    assert len(by_project) == 2, by_project
    assert all('project="proj_' in line for line in by_project), by_project


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_format_without_a_terminal(tmp_path: Path, fmt: str) -> None:
    """Without a terminal, ``ASSISTD_LOG_FORMAT`` decides too (here up to the database error
    that ends the command)."""
    env = base_env(tmp_path)
    env.update(
        {
            "ASSISTD_LOG_FORMAT": fmt,
            "ASSISTD_DATABASE_URL": f"postgresql://u:pw@127.0.0.1:{free_port()}/db",
            "OPENAI_API_KEY": "sk-x",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "assistd", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    if fmt == "json":
        assert json.loads(lines[0])["level"] == "ERROR"
    else:
        assert STAMP.match(lines[0]), lines[0]
        assert " ERROR " in lines[0], lines[0]


FAILING_APP = """
import threading, time, httpx, uvicorn
from fastapi import FastAPI
from assistd.core import logs
from assistd.web import errors
from assistd.web.middleware import RequestMiddleware

logs.setup("info", "json")
app = FastAPI()
errors.install(app)
app.add_middleware(RequestMiddleware)


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


server = uvicorn.Server(uvicorn.Config(app, port=PORT, log_config=None, access_log=False))
thread = threading.Thread(target=server.run)
thread.start()
while not server.started:
    time.sleep(0.05)
assert httpx.get("http://127.0.0.1:PORT/boom").status_code == 500
server.should_exit = True
thread.join()
"""


def test_a_500_logs_one_traceback() -> None:
    """The app's own error handling and middleware under uvicorn, with a route that fails:
    the 500 is logged once with its traceback (Starlette re-raises it to uvicorn, which would
    log it again), as JSON lines only."""
    script = FAILING_APP.replace("PORT", str(free_port()))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    failed = [r for r in records if "exc_info" in r]
    assert len(failed) == 1, done.stderr
    assert failed[0]["logger"] == "assistd.web.errors"
    assert "RuntimeError: boom" in failed[0]["exc_info"]
    access = [r for r in records if r["logger"] == "assistd.access"]
    assert [(a["path"], a["status"]) for a in access] == [("/boom", 500)]
    assert failed[0]["request_id"] == access[0]["request_id"]
