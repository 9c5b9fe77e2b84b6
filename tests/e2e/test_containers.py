"""Containers and their files end to end through the SDK (CRUD, bytes, expiry, bad input,
isolation), and the files placed in the container's real sandbox session."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import openai
import psycopg
import pytest
from openai import OpenAI

from assistd.containers import sandbox as container_sandbox
from assistd.core.config import Settings
from assistd.core.db import async_url, create_engine, dispose, make_sessionmaker
from assistd.core.errors import ConflictingStateError
from assistd.files.storage import LocalFileStorage
from assistd.sandbox.containers import session_name
from tests.conftest import TEST_MAX_UPLOAD_BYTES, Database, ServerProcess
from tests.e2e.test_errors import sdk_error
from tests.support.sandboxes import Sandboxes, engine, eventually, ok, sandboxes

__all__ = ["engine", "sandboxes"]  # the sandbox fixtures, used by the last tests

CONTAINER_KEYS = {
    "id",
    "object",
    "created_at",
    "name",
    "status",
    "expires_after",
    "last_active_at",
    "memory_limit",
    "network_policy",
}
FILE_KEYS = {"id", "object", "bytes", "container_id", "created_at", "path", "source"}
BINARY = bytes(range(256)) * 41 + b"\x00end"


def age(database: Database, container_id: str, seconds: int) -> None:
    """Move the container's last activity ``seconds`` into the past."""
    with psycopg.connect(database.url) as conn:
        conn.execute(
            "UPDATE containers SET last_active_at = last_active_at - %s WHERE id = %s",
            (seconds, container_id),
        )


def test_create_retrieve_list_and_delete(client: OpenAI, http: httpx.Client) -> None:
    before = int(time.time())
    made = client.containers.create(name="analysis")
    assert made.id.startswith("cntr_")
    raw = http.get(f"/containers/{made.id}").json()
    assert set(raw) == CONTAINER_KEYS
    assert raw["object"] == "container"
    assert raw["name"] == "analysis"
    assert raw["status"] == "running"
    assert raw["expires_after"] == {"anchor": "last_active_at", "minutes": 20}
    assert raw["memory_limit"] == "1g"
    assert raw["network_policy"] == {"type": "disabled"}
    assert before <= raw["created_at"] == raw["last_active_at"] <= int(time.time())

    other = client.containers.create(
        name="big",
        expires_after={"anchor": "last_active_at", "minutes": 90},
        memory_limit="4g",
        network_policy={"type": "disabled"},
    )
    assert other.expires_after is not None
    assert other.expires_after.minutes == 90
    assert other.memory_limit == "4g"
    third = client.containers.create(name="analysis")

    listed = [c.id for c in client.containers.list(limit=2)]
    assert listed == [third.id, other.id, made.id]
    assert [c.id for c in client.containers.list(order="asc")] == [made.id, other.id, third.id]
    assert [c.id for c in client.containers.list(name="analysis")] == [third.id, made.id]
    page = client.containers.list(limit=1, after=third.id)
    assert [c.id for c in page.data] == [other.id]
    assert page.has_more is True

    deleted = http.delete(f"/containers/{made.id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": made.id, "object": "container.deleted", "deleted": True}
    client.containers.delete(other.id)  # the SDK discards the receipt
    for gone in (made.id, other.id):
        sdk_error(
            openai.NotFoundError,
            functools.partial(client.containers.retrieve, gone),
            404,
            param="container_id",
        )
    assert [c.id for c in client.containers.list()] == [third.id]


def test_files_upload_copy_list_download_and_delete(client: OpenAI, http: httpx.Client) -> None:
    uploaded = client.files.create(
        file=("table.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="user_data"
    )
    container = client.containers.create(name="files", file_ids=[uploaded.id])
    (copied,) = client.containers.files.list(container.id).data
    assert copied.id.startswith("cfile_")
    assert copied.path == "/mnt/data/table.csv"
    assert copied.bytes == 8
    assert copied.source == "user"
    assert copied.container_id == container.id

    sent = client.containers.files.create(container.id, file=("blob.bin", BINARY))
    raw = http.get(f"/containers/{container.id}/files/{sent.id}").json()
    assert set(raw) == FILE_KEYS
    assert raw["object"] == "container.file"
    assert raw["path"] == "/mnt/data/blob.bin"
    assert raw["bytes"] == len(BINARY)
    # By file id, as JSON; the same name again gets the file's id added.
    again = client.containers.files.create(container.id, file_id=uploaded.id)
    assert again.path == f"/mnt/data/table-{again.id}.csv"

    content = client.containers.files.content.retrieve(sent.id, container_id=container.id)
    assert content.content == BINARY
    response = http.get(f"/containers/{container.id}/files/{sent.id}/content")
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''blob.bin"

    names = [f.path for f in client.containers.files.list(container.id, limit=1)]
    assert names == [again.path, "/mnt/data/blob.bin", "/mnt/data/table.csv"]
    asc = client.containers.files.list(container.id, order="asc", after=copied.id)
    assert [f.id for f in asc.data] == [sent.id, again.id]

    # The container keeps its copy when the uploaded file goes.
    client.files.delete(uploaded.id)
    copy_bytes = client.containers.files.content.retrieve(copied.id, container_id=container.id)
    assert copy_bytes.content == b"a,b\n1,2\n"

    client.containers.files.delete(sent.id, container_id=container.id)
    for call in (
        functools.partial(client.containers.files.retrieve, sent.id, container_id=container.id),
        functools.partial(
            client.containers.files.content.retrieve, sent.id, container_id=container.id
        ),
        functools.partial(client.containers.files.delete, sent.id, container_id=container.id),
    ):
        sdk_error(openai.NotFoundError, call, 404, param="file_id")
    assert [f.id for f in client.containers.files.list(container.id)] == [again.id, copied.id]

    client.containers.delete(container.id)
    sdk_error(
        openai.NotFoundError,
        functools.partial(client.containers.files.list, container.id),
        404,
        param="container_id",
    )


def test_expiry_follows_the_last_activity(
    client: OpenAI, http: httpx.Client, database: Database
) -> None:
    container = client.containers.create(
        name="short", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    age(database, container.id, 50)
    assert client.containers.retrieve(container.id).status == "running"
    # Adding a file is activity: the minute starts again.
    client.containers.files.create(container.id, file=("a.txt", b"a"))
    touched = client.containers.retrieve(container.id)
    assert touched.last_active_at is not None
    assert touched.last_active_at >= int(time.time()) - 2
    age(database, container.id, 61)
    expired = client.containers.retrieve(container.id)
    assert expired.status == "expired"
    assert [c.status for c in client.containers.list()] == ["expired"]
    sdk_error(
        openai.BadRequestError,
        functools.partial(client.containers.files.create, container.id, file=("b.txt", b"b")),
        400,
        param="container_id",
        code="container_expired",
    )
    # What it holds stays readable until it is deleted.
    assert len(client.containers.files.list(container.id).data) == 1
    client.containers.delete(container.id)


# (create kwargs, param, code)
BAD_CREATE: dict[str, tuple[dict[str, object], str, str]] = {
    "no name": ({}, "name", "missing_required_parameter"),
    "empty name": ({"name": ""}, "name", "invalid_value"),
    "bad memory": ({"name": "x", "memory_limit": "2g"}, "memory_limit", "invalid_value"),
    "bad anchor": (
        {"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}},
        "expires_after.anchor",
        "invalid_value",
    ),
    "zero minutes": (
        {"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}},
        "expires_after.minutes",
        "integer_below_min_value",
    ),
    "network": (
        {"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["a.com"]}},
        "network_policy.type",
        "invalid_value",
    ),
    "skills": (
        {"name": "x", "skills": [{"type": "skill_reference", "skill_id": "s"}]},
        "skills",
        "invalid_value",
    ),
    "unknown file": ({"name": "x", "file_ids": ["file-nope"]}, "file_ids[0]", "invalid_value"),
    "unknown field": ({"name": "x", "size": 3}, "size", "unknown_parameter"),
}


@pytest.mark.parametrize("case", list(BAD_CREATE))
def test_bad_create_is_400(http: httpx.Client, case: str) -> None:
    body, param, code = BAD_CREATE[case]
    response = http.post("/containers", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_bad_file_requests(client: OpenAI, http: httpx.Client) -> None:
    container = client.containers.create(name="bad files")
    url = f"/containers/{container.id}/files"
    sdk_error(
        openai.BadRequestError,
        functools.partial(client.containers.files.create, container.id, file_id="file-nope"),
        400,
        param="file_id",
        code="invalid_value",
    )
    sdk_error(
        openai.BadRequestError,
        functools.partial(client.containers.files.create, container.id),
        400,
        param="file_id",
        code="missing_required_parameter",
    )
    cases: list[tuple[httpx.Response, int, str | None]] = [
        (http.post(url, json={"file_id": 5}), 400, "file_id"),
        (http.post(url, json={"file_id": "x", "extra": 1}), 400, "extra"),
        (http.post(url, content=b"{", headers={"content-type": "application/json"}), 400, None),
        (http.post(url, content=b"[]", headers={"content-type": "application/json"}), 400, None),
        (http.post(url, files={"other": ("a.txt", b"a")}), 400, "file"),
        (
            http.post(url, files={"file": ("big.bin", b"x" * (TEST_MAX_UPLOAD_BYTES + 1))}),
            413,
            "file",
        ),
        (http.get(f"/containers/{container.id}/files", params={"limit": 0}), 400, "limit"),
    ]
    for response, status, param in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["param"] == param, response.text
    assert client.containers.files.list(container.id).data == []
    sdk_error(
        openai.NotFoundError,
        functools.partial(
            client.containers.files.retrieve, "cfile_" + "z" * 24, container_id=container.id
        ),
        404,
        param="file_id",
    )


def test_another_projects_container_is_unknown(client: OpenAI, other_client: OpenAI) -> None:
    uploaded = client.files.create(file=("a.txt", io.BytesIO(b"secret")), purpose="user_data")
    container = client.containers.create(name="a", file_ids=[uploaded.id])
    (item,) = client.containers.files.list(container.id).data
    calls: dict[str, Callable[[str], object]] = {
        "retrieve": other_client.containers.retrieve,
        "delete": other_client.containers.delete,
        "list files": other_client.containers.files.list,
        "upload": lambda cid: other_client.containers.files.create(cid, file=("b.txt", b"b")),
        "retrieve file": lambda cid: other_client.containers.files.retrieve(
            item.id, container_id=cid
        ),
        "download": lambda cid: other_client.containers.files.content.retrieve(
            item.id, container_id=cid
        ),
        "delete file": lambda cid: other_client.containers.files.delete(item.id, container_id=cid),
    }
    unknown = "cntr_" + "z" * (len(container.id) - 5)
    for name, call in calls.items():
        theirs = sdk_error(
            openai.NotFoundError, functools.partial(call, container.id), 404, param="container_id"
        )
        missing = sdk_error(
            openai.NotFoundError, functools.partial(call, unknown), 404, param="container_id"
        )
        assert theirs.message.replace(container.id, unknown) == missing.message, name
    assert container.id not in [c.id for c in other_client.containers.list()]
    # B cannot copy A's file into a container of its own.
    mine = other_client.containers.create(name="b")
    sdk_error(
        openai.BadRequestError,
        functools.partial(other_client.containers.files.create, mine.id, file_id=uploaded.id),
        400,
        param="file_id",
    )
    sdk_error(
        openai.BadRequestError,
        functools.partial(other_client.containers.create, name="b2", file_ids=[uploaded.id]),
        400,
        param="file_ids[0]",
    )
    assert (
        client.containers.files.content.retrieve(item.id, container_id=container.id).content
        == b"secret"
    )


Runner = Callable[[str, str], Awaitable[str]]


@pytest.fixture
async def run_in_container(
    database: Database, server_env: dict[str, str], sandboxes: Sandboxes
) -> AsyncIterator[Runner]:
    """Run code in a container's sandbox session the way the engine will: through
    ``assistd.containers.sandbox`` on the server's database and file storage."""
    db = create_engine(async_url(database.url), Settings())
    maker = make_sessionmaker(db)
    storage = LocalFileStorage(Path(server_env["ASSISTD_DATA_DIR"]) / "files")
    manager = sandboxes.manager()

    async def run(container_id: str, code: str) -> str:
        with psycopg.connect(database.url) as conn:
            row = conn.execute("SELECT project_id FROM containers WHERE id = %s", (container_id,))
            (project_id,) = row.fetchone()  # type: ignore[misc]
        execution = await container_sandbox.execute(
            manager, maker, storage, project_id, container_id, code
        )
        return ok(execution)

    yield run
    await dispose(db)


LIST_DATA = "import os; print(sorted(os.listdir('/mnt/data')))"


async def test_container_files_are_in_its_sandbox(
    client: OpenAI,
    sandboxes: Sandboxes,
    run_in_container: Runner,
    database: Database,
) -> None:
    uploaded = client.files.create(
        file=("table.csv", io.BytesIO(b"a,b\n1,2\n")), purpose="user_data"
    )
    container = client.containers.create(name="sandboxed", file_ids=[uploaded.id])
    client.containers.files.create(container.id, file=("blob.bin", BINARY))
    # Nothing runs until code does.
    assert sandboxes.inspect(session_name(container.id)) is None

    run = run_in_container
    logs = await run(container.id, LIST_DATA)
    assert logs.strip() == "['blob.bin', 'table.csv']"
    assert sandboxes.session_id(container.id)
    check = "print(open('/mnt/data/blob.bin','rb').read() == bytes(range(256)) * 41 + b'\\x00end')"
    assert (await run(container.id, check)).strip() == "True"

    # A file added while the session runs is there at the next execution.
    client.containers.files.create(container.id, file=("later.txt", b"later"))
    logs = await run(container.id, LIST_DATA)
    assert logs.strip() == "['blob.bin', 'later.txt', 'table.csv']"

    # An expired container runs nothing.
    age(database, container.id, 21 * 60)
    with pytest.raises(ConflictingStateError):
        await run(container.id, "print(1)")

    # Deleting the container removes its session (the workers do it).
    client.containers.delete(container.id)
    await eventually(
        lambda: sandboxes.inspect(session_name(container.id)) is None,
        30,
        f"the session of {container.id} is still there",
    )


def test_azure_v1_shape_serves_containers(server: ServerProcess, api_key: str) -> None:
    with OpenAI(base_url=server.base_url + "/openai/v1", api_key=api_key, max_retries=0) as azure:
        container = azure.containers.create(name="via azure")
        sent = azure.containers.files.create(container.id, file=("blob.bin", BINARY))
        content = azure.containers.files.content.retrieve(sent.id, container_id=container.id)
        assert content.content == BINARY
        azure.containers.delete(container.id)
