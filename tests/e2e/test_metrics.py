"""``GET /metrics``: Prometheus text with requests, runs, backend figures and queue depth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from assistd.core.db import async_url
from assistd.core.migrate import head_revisions
from tests.conftest import Database, ServerProcess, own_server, stop_server


@pytest.fixture(scope="module")
def serve_with_worker(
    pg_root: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, OpenAI]]:
    """The one-command shape (API and worker in one process) on a database of its own, so
    no other worker takes the run and this process's counters see it."""
    data = tmp_path_factory.mktemp("metrics")
    proc, client = own_server(
        pg_root, {**server_env, "ASSISTD_DATA_DIR": str(data)}, Path(data) / "log"
    )
    yield proc, client
    client.close()
    stop_server(proc)


def sample(body: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_and_runs(
    serve_with_worker: tuple[ServerProcess, OpenAI],
) -> None:
    server, client = serve_with_worker
    base = server.base_url
    before = httpx.get(base + "/metrics").text
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '#script {"reply": "counted"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    response = httpx.get(base + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    finished = "assistd_runs_finished_total"
    assert (
        sample(after, finished, status="completed")
        == sample(before, finished, status="completed") + 1
    )
    assert sample(after, "assistd_run_seconds_count", status="completed") >= 1
    created = sample(
        after,
        "assistd_http_requests_total",
        method="POST",
        route="/v1/threads/{thread_id}/runs",
        status="200",
    )
    assert created >= 1
    assert sample(after, "assistd_backend_request_seconds_count", model="gpt-4o") >= 1
    assert sample(after, "assistd_runs", status="completed") >= 1
    assert "assistd_queue_depth" in after


def test_health_and_ready(server: ServerProcess, database: Database) -> None:
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.base_url + "/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert body["migration"] == sorted(head_revisions(async_url(database.url)))
