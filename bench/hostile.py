"""Hostile-input benchmark: the server's memory and responsiveness while it handles bad input.

    python bench/hostile.py [--only NAME ...] [--skip-sandbox] [--strict]

Starts its own embedded Postgres, the scripted OpenAI-compatible backend
(``tests/support/scripted_chat.py``) and one ``assistd serve`` process, then, one scenario at
a time, sends a hostile input and waits until the server has dealt with it:

* ``idle``: nothing (the baseline);
* ``bodies``: ten parallel 100 MB request bodies without an API key;
* ``long_message``: a 20 MB message, then the longest message allowed and a run on it;
* ``pdf_bomb`` / ``docx_bomb``: a ~200 KB PDF whose content inflates to 50 MB, a ~300 KB DOCX
  whose ``document.xml`` is 100 MB, each added to a vector store until its ingestion ends
  (after a small file, so that the parser process is running when the baseline is taken);
* ``sandbox_output``: a code_interpreter run whose code writes a 20 MB file and four 300 KB
  files (needs Docker and the sandbox image);
* ``sandbox_input``: a 200 MB file uploaded and attached to a code_interpreter run that reads it.

Throughout, a thread samples the server process's RSS every 20 ms and another calls
``/health`` every 10 ms. Per scenario it prints the outcome, the RSS growth over the level
just before the scenario (the server process alone, and with its children), and the
``/health`` p50/p99/max. Targets: RSS growth <= 256 MB per hostile request, ``/health``
p99 < 100 ms. Everything started is cleaned up at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _stack import (
    Cleanup,
    child_pids,
    free_port,
    log,
    mint_key,
    percentile,
    run_main,
    spawn,
    start_embedded_postgres,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.bombs import docx_bomb, pdf_bomb  # noqa: E402

SCRIPTED_CHAT = ROOT / "tests" / "support" / "scripted_chat.py"
TARGET_RSS_MB = 256.0
TARGET_HEALTH_P99_MS = 100.0
HEALTH_TIMEOUT_S = 5.0
MB = 1024 * 1024
ALL = (
    "idle",
    "bodies",
    "long_message",
    "pdf_bomb",
    "docx_bomb",
    "sandbox_output",
    "sandbox_input",
)
SANDBOX = ("sandbox_output", "sandbox_input")


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in kB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> int:
    return rss_kb(pid) + sum(rss_kb(child) for child in child_pids(pid))


class Sampler:
    """RSS every 20 ms and ``/health`` every 10 ms, each in a thread of its own, in windows."""

    def __init__(self, pid: int, base_url: str) -> None:
        self.pid = pid
        self.base_url = base_url
        self.rss: list[tuple[float, int, int]] = []
        self.health: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample_rss, daemon=True),
            threading.Thread(target=self._sample_health, daemon=True),
        ]

    def __enter__(self) -> Sampler:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(HEALTH_TIMEOUT_S + 1)

    def _sample_rss(self) -> None:
        while not self._stop.wait(0.02):
            self.rss.append((time.monotonic(), rss_kb(self.pid), tree_rss_kb(self.pid)))

    def _sample_health(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=HEALTH_TIMEOUT_S) as client:
            while not self._stop.wait(0.01):
                started = time.monotonic()
                try:
                    status = client.get("/health").status_code
                except httpx.HTTPError:
                    status = 0
                self.health.append((started, (time.monotonic() - started) * 1000, status))

    def window(self, start: float, end: float) -> tuple[list[int], list[int], list[float], int]:
        """RSS (process, tree) and ``/health`` latencies and failures between two instants."""
        rss = [r for t, r, _ in self.rss if start <= t <= end]
        tree = [r for t, _, r in self.rss if start <= t <= end]
        health = [(ms, status) for t, ms, status in self.health if start <= t <= end]
        return rss, tree, [ms for ms, _ in health], sum(1 for _, s in health if s != 200)


@dataclass
class Result:
    name: str
    outcome: str
    seconds: float
    rss_growth_mb: float
    tree_growth_mb: float
    health_p50: float
    health_p99: float
    health_max: float
    health_failures: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and self.rss_growth_mb <= TARGET_RSS_MB
            and self.health_p99 < TARGET_HEALTH_P99_MS
            and self.health_failures == 0
        )


class Api:
    """The calls the scenarios make, over one authenticated client."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key
        self.client = httpx.Client(
            base_url=base_url + "/v1",
            headers={"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"},
            timeout=600,
        )

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def upload(self, name: str, data: bytes | Path) -> str:
        with contextlib.ExitStack() as stack:
            content: Any = stack.enter_context(open(data, "rb")) if isinstance(data, Path) else data
            response = self.client.post(
                "/files", files={"file": (name, content)}, data={"purpose": "assistants"}
            )
        response.raise_for_status()
        file_id: str = response.json()["id"]
        return file_id

    def wait(
        self, path: str, done: Callable[[dict[str, Any]], bool], limit: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            found = self.get(path)
            if done(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.25)


def _error(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        error = response.json()["error"]
        return f"{response.status_code} {error.get('code') or error.get('type')}"
    return str(response.status_code)


# ---- scenarios -----------------------------------------------------------------------------


def idle(api: Api, tmp: Path) -> str:
    time.sleep(5)
    return "nothing sent"


def _send_body(base_url: str, size: int) -> str:
    """POST ``size`` bytes without a key, as fast as the server takes them; its status."""
    host, port = base_url.removeprefix("http://").split(":")
    chunk = b"x" * MB
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/threads HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (host.encode(), size)
        )
        with contextlib.suppress(OSError):
            for _ in range(size // MB):
                sock.sendall(chunk)
        with contextlib.suppress(OSError):
            head = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
            return head.split(" ", 2)[1] if head.count(" ") else head or "closed"
        return "reset"


def bodies(api: Api, tmp: Path) -> str:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(_send_body(api.base_url, 100 * MB)))
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {status: results.count(status) for status in sorted(set(results))}
    return "statuses " + ", ".join(f"{k} x{v}" for k, v in counts.items())


def _run(
    api: Api, assistant: dict[str, Any], text: str, limit: float, **message: Any
) -> dict[str, Any]:
    thread = api.post("/threads", {})
    api.post(f"/threads/{thread['id']}/messages", {"role": "user", "content": text, **message})
    run = api.post(f"/threads/{thread['id']}/runs", {"assistant_id": assistant["id"]})
    return api.wait(
        f"/threads/{thread['id']}/runs/{run['id']}",
        lambda r: r["status"] not in ("queued", "in_progress", "cancelling"),
        limit,
    )


def long_message(api: Api, tmp: Path) -> str:
    assistant = api.post("/assistants", {"model": "gpt-4o"})
    thread = api.post("/threads", {})
    huge = api.client.post(
        f"/threads/{thread['id']}/messages", json={"role": "user", "content": "a" * (20 * MB)}
    )
    outcome = f"20 MB message: {_error(huge)}"
    if huge.status_code == 200:  # accepted: run on it, as the scenario does
        run = api.post(f"/threads/{thread['id']}/runs", {"assistant_id": assistant["id"]})
        found = api.wait(
            f"/threads/{thread['id']}/runs/{run['id']}",
            lambda r: r["status"] not in ("queued", "in_progress", "cancelling"),
            600,
        )
        outcome += f", run on it {found['status']}"
    run = _run(api, assistant, "a" * 255_000 + " #script " + json.dumps({"reply": "ok"}), 300)
    return outcome + f"; longest allowed message: run {run['status']}"


def _ingest(api: Api, name: str, data: bytes) -> str:
    file_id = api.upload(name, data)
    store = api.post("/vector_stores", {"name": name})
    api.post(f"/vector_stores/{store['id']}/files", {"file_id": file_id})
    found = api.wait(
        f"/vector_stores/{store['id']}/files/{file_id}",
        lambda f: f["status"] != "in_progress",
        600,
    )
    error = (found.get("last_error") or {}).get("message", "")
    return f"{found['status']}" + (f": {error}" if error else "")


def pdf_bomb_scenario(api: Api, tmp: Path) -> str:
    return _ingest(api, "bomb.pdf", pdf_bomb())


def docx_bomb_scenario(api: Api, tmp: Path) -> str:
    return _ingest(api, "bomb.docx", docx_bomb())


def _code_script(source: str) -> str:
    steps = [
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": source}}]},
        {"reply": "done"},
    ]
    return "#script " + json.dumps({"steps": steps})


def _coder(api: Api, **extra: Any) -> dict[str, Any]:
    return api.post(
        "/assistants", {"model": "gpt-4o", "tools": [{"type": "code_interpreter"}], **extra}
    )


def _outputs(run: dict[str, Any]) -> str:
    error = (run.get("last_error") or {}).get("message")
    return f"run {run['status']}" + (f" ({error})" if error else "")


def sandbox_output(api: Api, tmp: Path) -> str:
    source = (
        "import os\n"
        "open('/mnt/data/big.bin', 'wb').write(os.urandom(20 * 1024 * 1024))\n"
        "for i in range(4):\n"
        "    open(f'/mnt/data/part{i}.bin', 'wb').write(os.urandom(300 * 1024))\n"
        "print('written')\n"
    )
    run = _run(api, _coder(api), _code_script(source), 600)
    return _outputs(run)


def sandbox_input(api: Api, tmp: Path) -> str:
    path = tmp / "input.bin"
    with open(path, "wb") as out:
        for _ in range(200):
            out.write(os.urandom(MB))
    file_id = api.upload("input.bin", path)
    path.unlink()
    source = "import os\nprint(os.path.getsize('/mnt/data/input.bin'))\n"
    run = _run(
        api,
        _coder(api),
        _code_script(source),
        900,
        attachments=[{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}],
    )
    return _outputs(run)


def warm_parser(api: Api) -> None:
    """Ingest a small file first: the parser process a bomb may fill is then already
    running, and its start-up memory is part of the baseline, not of the bomb's cost."""
    _ingest(api, "warm.txt", b"A small ordinary file. " * 50)


PREPARE: dict[str, Callable[[Api], None]] = {"pdf_bomb": warm_parser, "docx_bomb": warm_parser}
"""What a scenario needs in place before its baseline is taken."""

SCENARIOS: dict[str, Callable[[Api, Path], str]] = {
    "idle": idle,
    "bodies": bodies,
    "long_message": long_message,
    "pdf_bomb": pdf_bomb_scenario,
    "docx_bomb": docx_bomb_scenario,
    "sandbox_output": sandbox_output,
    "sandbox_input": sandbox_input,
}


# ---- stack and report ----------------------------------------------------------------------


@dataclass
class Stack:
    base_url: str
    pid: int
    key: str


def start_stack(tmp: Path, cleanup: Cleanup) -> Stack:
    from assistd.core.db import async_url
    from assistd.core.migrate import upgrade_to_head

    log(f"starting embedded Postgres in {tmp}")
    url = start_embedded_postgres(tmp, cleanup)
    upgrade_to_head(async_url(url))
    _, key = mint_key(url, f"bench-{uuid.uuid4().hex[:12]}")
    backend_port = free_port()
    spawn(
        "scripted backend",
        [sys.executable, str(SCRIPTED_CHAT), "--port", str(backend_port)],
        os.environ,
        tmp / "backend.log",
        cleanup,
        health_url=f"http://127.0.0.1:{backend_port}/health",
    )
    data_dir = tmp / "serverdata"
    data_dir.mkdir()
    log("starting assistd serve")
    server = start_server(
        url,
        data_dir,
        tmp / "server.log",
        cleanup,
        extra_env={
            "OPENAI_BASE_URL": f"http://127.0.0.1:{backend_port}/v1",
            "OPENAI_API_KEY": "sk-bench",
            "AZURE_OPENAI_ENDPOINT": None,
            "ASSISTD_MODELS__MODELS_FILE": None,
        },
    )
    return Stack(server.base_url, server.process.pid, key)


def measure(stack: Stack, names: list[str], tmp: Path) -> list[Result]:
    api = Api(stack.base_url, stack.key)
    results = []
    with Sampler(stack.pid, stack.base_url) as sampler:
        time.sleep(1)
        for name in names:
            log(f"scenario {name}")
            if name in PREPARE:
                PREPARE[name](api)
            time.sleep(1)
            before = [r for _, r, _ in sampler.rss[-25:]] or [rss_kb(stack.pid)]
            before_tree = [r for _, _, r in sampler.rss[-25:]] or [tree_rss_kb(stack.pid)]
            start = time.monotonic()
            problems = []
            try:
                outcome = SCENARIOS[name](api, tmp)
            except Exception as exc:  # a scenario that breaks is reported, the rest go on
                outcome = f"error: {exc!r}"
                problems.append(outcome)
            end = time.monotonic()
            time.sleep(0.1)
            rss, tree, health, failures = sampler.window(start, end + 0.1)
            results.append(
                Result(
                    name=name,
                    outcome=outcome,
                    seconds=end - start,
                    rss_growth_mb=(max(rss, default=0) - min(before)) / 1024,
                    tree_growth_mb=(max(tree, default=0) - min(before_tree)) / 1024,
                    health_p50=percentile(health, 0.50) if health else float("nan"),
                    health_p99=percentile(health, 0.99) if health else float("nan"),
                    health_max=max(health, default=float("nan")),
                    health_failures=failures,
                    problems=problems,
                )
            )
            log(f"  {outcome}")
    return results


def report(results: list[Result]) -> bool:
    print()
    print(
        f"targets: RSS growth <= {TARGET_RSS_MB:.0f} MB per hostile request, "
        f"/health p99 < {TARGET_HEALTH_P99_MS:.0f} ms, no failed /health"
    )
    head = f"{'scenario':<15}{'s':>7}{'RSS +MB':>9}{'tree +MB':>10}{'p50 ms':>8}{'p99 ms':>8}"
    print(head + f"{'max ms':>8}{'fail':>6}  result")
    for r in results:
        print(
            f"{r.name:<15}{r.seconds:>7.1f}{r.rss_growth_mb:>9.1f}{r.tree_growth_mb:>10.1f}"
            f"{r.health_p50:>8.1f}{r.health_p99:>8.1f}{r.health_max:>8.1f}"
            f"{r.health_failures:>6}  {'PASS' if r.ok else 'FAIL'}"
        )
    print()
    for r in results:
        print(f"{r.name}: {r.outcome}")
    return all(r.ok for r in results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=ALL, help="run these scenarios only")
    parser.add_argument("--skip-sandbox", action="store_true", help="no code_interpreter")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(args.only or ALL)
    if args.skip_sandbox:
        names = [n for n in names if n not in SANDBOX]
    if "idle" not in names:
        names.insert(0, "idle")

    def body(cleanup: Cleanup, tmp: Path) -> bool:
        return report(measure(start_stack(tmp, cleanup), names, tmp))

    return run_main(body, args.strict, "assistd-bench-hostile-")


if __name__ == "__main__":
    sys.exit(main())
