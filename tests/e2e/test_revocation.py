"""A key revoked with ``assistd keys revoke`` stops working at once on every server
process, even where it is cached (the servers here trust a key for 30 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Database, ServerProcess, start_server, stop_server
from tests.e2e.test_serve import KEY_RE, run_cli


@pytest.fixture(scope="module")
def caching_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Two server processes on the session database that cache keys for 30 s."""
    log = tmp_path_factory.mktemp("revocation") / "serve.log"
    env = {**server_env, "ASSISTD_API_KEY_CACHE_SECONDS": "30"}
    proc = start_server(env, log, "--no-worker", "--processes", "2")
    yield proc
    stop_server(proc)


def get_status(server: ServerProcess, key: str) -> int:
    """``GET /v1/assistants`` on a new connection (so either process may answer)."""
    answer = httpx.get(
        server.api + "/assistants",
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=10,
    )
    return answer.status_code


def test_revoked_key_is_refused_at_once(
    caching_server: ServerProcess, database: Database, tmp_path: Path
) -> None:
    env = {"ASSISTD_DATABASE_URL": database.url, "ASSISTD_DATA_DIR": str(tmp_path)}
    project = f"rev-{uuid.uuid4().hex[:8]}"
    created = run_cli("keys", "create", "--project", project, env=env)
    assert created.returncode == 0, created.stderr
    secret = KEY_RE.findall(created.stdout)[0]
    listed = run_cli("keys", "list", env=env)
    key_id = next(
        line.split("\t")[0] for line in listed.stdout.splitlines() if f"\t{project}\t" in line
    )

    # Enough requests on fresh connections that both processes have looked the key up.
    assert [get_status(caching_server, secret) for _ in range(12)] == [200] * 12

    revoked = run_cli("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(1)
    statuses = [get_status(caching_server, secret) for _ in range(12)]
    assert statuses == [401] * 12
