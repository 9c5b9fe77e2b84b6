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


def test_metrics_need_the_token_and_name_no_project(
    pg_root: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **server_env,
        "ASSISTD_DATA_DIR": str(tmp_path),
        "ASSISTD_METRICS__ACCESS": "token",
        "ASSISTD_METRICS__TOKEN": "metrics-s3cret",
    }
    proc, client = own_server(pg_root, env, tmp_path / "log")
    try:
        assistant = client.beta.assistants.create(model="gpt-4o")
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": '#script {"reply": "counted"}'}]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id
        )
        assert run.status == "completed", run.last_error
        url = proc.base_url + "/metrics"
        # Loopback is no pass in ``token`` mode, and neither is an API key.
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": client.api_key}):
            refused = httpx.get(url, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["type"] == "invalid_request_error"
            assert "assistd_runs" not in refused.text
        allowed = httpx.get(url, headers={"Authorization": "Bearer metrics-s3cret"})
        assert allowed.status_code == 200
        assert sample(allowed.text, "assistd_runs", status="completed") >= 1
        # No figure names a project unless ASSISTD_METRICS__PER_PROJECT asks for it.
        assert "project" not in allowed.text
        assert "proj_" not in allowed.text
    finally:
        client.close()
        stop_server(proc)


def test_metrics_off(pg_root: str, server_env: dict[str, str], tmp_path: Path) -> None:
    env = {**server_env, "ASSISTD_DATA_DIR": str(tmp_path), "ASSISTD_METRICS__ACCESS": "off"}
    proc, client = own_server(pg_root, env, tmp_path / "log")
    try:
        answer = httpx.get(proc.base_url + "/metrics")
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "Invalid URL (GET /metrics)"
    finally:
        client.close()
        stop_server(proc)


def test_metrics_per_project_when_asked(database: Database, client: OpenAI) -> None:
    from sqlalchemy import create_engine, text

    from assistd.web.metrics import DatabaseCollector

    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '#script {"reply": "mine"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    engine = create_engine(async_url(database.url))
    try:
        with engine.connect() as conn:
            project = conn.execute(
                text("SELECT project_id FROM runs WHERE id = :id"), {"id": run.id}
            ).scalar_one()
        plain = {family.name for family in DatabaseCollector(engine).collect()}
        asked = list(DatabaseCollector(engine, per_project=True).collect())
    finally:
        engine.dispose()
    assert "assistd_project_runs" not in plain
    samples = [s for f in asked if f.name == "assistd_project_runs" for s in f.samples]
    mine = [s.value for s in samples if s.labels == {"project": project, "status": "completed"}]
    assert mine == [1]
