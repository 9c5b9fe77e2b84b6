"""Uploads end to end: a file sent in parts through the SDK's ``upload_file_chunked``,
assembled into a file whose bytes download unchanged; states, limits, isolation, memory."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import openai
import psycopg
import pytest
from openai import AzureOpenAI, OpenAI

from tests.conftest import TEST_MAX_UPLOAD_BYTES, Database, ServerProcess
from tests.support.memory import reset_peak, status_kb

MB = 1024 * 1024


def _create(client: OpenAI, size: int, **extra: object) -> str:
    upload = client.uploads.create(
        bytes=size,
        filename="data.bin",
        mime_type="application/octet-stream",
        purpose="assistants",
        **extra,  # type: ignore[arg-type]
    )
    return upload.id


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    return body


def test_upload_file_chunked_round_trip(client: OpenAI, tmp_path: Path) -> None:
    # Over the test server's /files limit: only the Uploads API takes a file this big.
    data = os.urandom(5 * MB + 12345)
    assert len(data) > TEST_MAX_UPLOAD_BYTES
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    before = int(time.time())
    upload = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=MB,
        md5=hashlib.md5(data).hexdigest(),
    )
    assert upload.status == "completed"
    assert upload.id.startswith("upload_")
    assert upload.bytes == len(data)
    assert upload.filename == "big.bin"
    assert before <= upload.created_at <= int(time.time())
    assert upload.expires_at == upload.created_at + 3600
    assert upload.file is not None
    assert upload.file.bytes == len(data)
    assert upload.file.purpose == "assistants"
    assert upload.file.filename == "big.bin"
    assert client.files.retrieve(upload.file.id).bytes == len(data)
    assert client.files.content(upload.file.id).read() == data


def test_parts_are_joined_in_the_order_given(client: OpenAI) -> None:
    upload_id = _create(client, 9, expires_after={"anchor": "created_at", "seconds": 7200})
    first = client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    second = client.uploads.parts.create(upload_id=upload_id, data=b"defghi")
    assert first.object == "upload.part"
    assert first.upload_id == upload_id
    assert first.id.startswith("part_")
    done = client.uploads.complete(upload_id=upload_id, part_ids=[second.id, first.id])
    assert done.file is not None
    assert client.files.content(done.file.id).read() == b"defghiabc"
    # The file keeps the expiry the upload asked for.
    assert done.file.expires_at == done.file.created_at + 7200


def test_create_shape_and_raw_json(http: httpx.Client) -> None:
    answer = http.post(
        "/uploads",
        json={"bytes": 10, "filename": "a.txt", "mime_type": "text/plain", "purpose": "batch"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "file",
    }
    assert body["object"] == "upload"
    assert body["status"] == "pending"
    assert body["file"] is None
    assert body["expires_at"] - body["created_at"] == 3600


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"filename": "a", "mime_type": "x", "purpose": "assistants"}, "bytes", None),
        (
            {"bytes": 8 * 1024**3 + 1, "filename": "a", "mime_type": "x", "purpose": "assistants"},
            "bytes",
            "invalid_value",
        ),
        ({"bytes": 0, "filename": "a", "mime_type": "x", "purpose": "assistants"}, "bytes", None),
        ({"bytes": 1, "filename": "a", "mime_type": "x", "purpose": "poems"}, "purpose", None),
        ({"bytes": 1, "filename": "", "mime_type": "x", "purpose": "assistants"}, "filename", None),
        (
            {"bytes": 1, "filename": "a", "mime_type": "x", "purpose": "batch", "colour": 1},
            "colour",
            "unknown_parameter",
        ),
        (
            {
                "bytes": 1,
                "filename": "a",
                "mime_type": "x",
                "purpose": "batch",
                "expires_after": {"anchor": "created_at", "seconds": 10},
            },
            "expires_after.seconds",
            None,
        ),
    ],
)
def test_create_rejects_bad_input(
    http: httpx.Client, body: dict[str, object], param: str, code: str | None
) -> None:
    answer = http.post("/uploads", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_complete_checks_the_size_the_parts_and_the_md5(client: OpenAI) -> None:
    upload_id = _create(client, 6)
    part = client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    with pytest.raises(openai.BadRequestError) as short:
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id])
    assert _error(short.value)["param"] == "part_ids"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id, "part_nope"])
    assert _error(unknown.value)["param"] == "part_ids[1]"
    with pytest.raises(openai.BadRequestError) as twice:
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id, part.id])
    assert _error(twice.value)["param"] == "part_ids[1]"
    other = client.uploads.parts.create(upload_id=upload_id, data=b"def")
    files_before = {f.id for f in client.files.list()}
    with pytest.raises(openai.BadRequestError) as md5:
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id, other.id], md5="0" * 32)
    assert _error(md5.value)["param"] == "md5"
    assert {f.id for f in client.files.list()} == files_before
    # Every refusal left the upload pending: it still completes.
    done = client.uploads.complete(
        upload_id=upload_id, part_ids=[part.id, other.id], md5=hashlib.md5(b"abcdef").hexdigest()
    )
    assert done.status == "completed"


def test_parts_beyond_the_declared_size_are_refused(client: OpenAI) -> None:
    upload_id = _create(client, 4)
    client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    with pytest.raises(openai.BadRequestError) as info:
        client.uploads.parts.create(upload_id=upload_id, data=b"de")
    assert _error(info.value)["param"] == "data"


def test_a_part_over_64_mb_is_413(http: httpx.Client, client: OpenAI) -> None:
    upload_id = _create(client, 100 * MB)
    answer = http.post(
        f"/uploads/{upload_id}/parts", files={"data": ("part", b"\0" * (64 * MB + 1))}
    )
    assert answer.status_code == 413
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_part_requests_without_data(http: httpx.Client, client: OpenAI) -> None:
    upload_id = _create(client, 10)
    no_data = http.post(f"/uploads/{upload_id}/parts", files={"other": ("x", b"12")})
    assert no_data.status_code == 400
    assert no_data.json()["error"]["param"] == "data"
    as_json = http.post(f"/uploads/{upload_id}/parts", json={"data": "12"})
    assert as_json.status_code == 400
    missing = http.post("/uploads/upload_nope/parts", files={"data": ("x", b"12")})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No upload found with id 'upload_nope'."


def test_cancel_and_completed_uploads_take_nothing_more(client: OpenAI) -> None:
    upload_id = _create(client, 3)
    part = client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    cancelled = client.uploads.cancel(upload_id=upload_id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id])
    with pytest.raises(openai.BadRequestError):
        client.uploads.cancel(upload_id=upload_id)

    done_id = _create(client, 3)
    done_part = client.uploads.parts.create(upload_id=done_id, data=b"xyz")
    client.uploads.complete(upload_id=done_id, part_ids=[done_part.id])
    for call in (
        lambda: client.uploads.parts.create(upload_id=done_id, data=b"x"),
        lambda: client.uploads.complete(upload_id=done_id, part_ids=[done_part.id]),
        lambda: client.uploads.cancel(upload_id=done_id),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert "completed" in _error(info.value)["message"]  # type: ignore[operator]


def _part_files(server_env: dict[str, str], part_id: str) -> list[Path]:
    return list((Path(server_env["ASSISTD_DATA_DIR"]) / "files").glob(f"*/uploads/*/{part_id}"))


def test_expired_upload_takes_no_parts_and_its_parts_are_deleted(
    client: OpenAI, database: Database, server_env: dict[str, str]
) -> None:
    upload_id = _create(client, 10)
    part = client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    assert len(_part_files(server_env, part.id)) == 1
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("UPDATE uploads SET expires_at = expires_at - 3601 WHERE id = %s", [upload_id])
    with pytest.raises(openai.BadRequestError) as info:
        client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    assert "expired" in _error(info.value)["message"]  # type: ignore[operator]
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload_id=upload_id, part_ids=[part.id])
    # The worker's maintenance marks it expired and removes the part's bytes.
    deadline = time.monotonic() + 20
    while _part_files(server_env, part.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _part_files(server_env, part.id) == []
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT status FROM uploads WHERE id = %s", [upload_id]).fetchone()
    assert row == ("expired",)


def test_cancel_and_complete_remove_the_parts_bytes(
    client: OpenAI, server_env: dict[str, str]
) -> None:
    cancelled = _create(client, 3)
    part = client.uploads.parts.create(upload_id=cancelled, data=b"abc")
    client.uploads.cancel(upload_id=cancelled)
    completed = _create(client, 3)
    joined = client.uploads.parts.create(upload_id=completed, data=b"abc")
    client.uploads.complete(upload_id=completed, part_ids=[joined.id])
    deadline = time.monotonic() + 10
    while (_part_files(server_env, part.id) or _part_files(server_env, joined.id)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert _part_files(server_env, part.id) == []
    assert _part_files(server_env, joined.id) == []


def test_uploads_are_isolated_between_projects(client: OpenAI, other_client: OpenAI) -> None:
    upload_id = _create(client, 3)
    part = client.uploads.parts.create(upload_id=upload_id, data=b"abc")
    for call in (
        lambda: other_client.uploads.parts.create(upload_id=upload_id, data=b"abc"),
        lambda: other_client.uploads.complete(upload_id=upload_id, part_ids=[part.id]),
        lambda: other_client.uploads.cancel(upload_id=upload_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    # Another project's part cannot be spliced into one's own upload either.
    own = _create(other_client, 3)
    with pytest.raises(openai.BadRequestError) as info:
        other_client.uploads.complete(upload_id=own, part_ids=[part.id])
    assert _error(info.value)["param"] == "part_ids[0]"
    done = client.uploads.complete(upload_id=upload_id, part_ids=[part.id])
    assert done.file is not None
    with pytest.raises(openai.NotFoundError):
        other_client.files.retrieve(done.file.id)


def test_uploads_in_the_azure_shape(server: ServerProcess, api_key: str) -> None:
    with AzureOpenAI(
        azure_endpoint=server.base_url, api_key=api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        upload = azure.uploads.upload_file_chunked(
            file=b"hello azure",
            filename="hi.txt",
            bytes=11,
            mime_type="text/plain",
            purpose="assistants",
            part_size=4,
        )
        assert upload.file is not None
        assert azure.files.content(upload.file.id).read() == b"hello azure"


def test_a_part_is_never_held_whole_in_memory(
    client: OpenAI, server: ServerProcess, tmp_path: Path
) -> None:
    size = 40 * MB
    path = tmp_path / "part.bin"
    with open(path, "wb") as out:
        for _ in range(size // MB):
            out.write(os.urandom(MB))
    upload_id = _create(client, size)
    client.uploads.parts.create(upload_id=upload_id, data=b"")  # warm the path up
    pid = server.process.pid
    reset_peak(pid)
    before = status_kb(pid, "VmHWM")
    with open(path, "rb") as source:
        part = client.uploads.parts.create(upload_id=upload_id, data=source)
    grown = status_kb(pid, "VmHWM") - before
    assert grown < 12 * 1024, f"the server's peak RSS grew by {grown} kB for a 40 MB part"
    done = client.uploads.complete(upload_id=upload_id, part_ids=[part.id])
    assert done.file is not None
    assert done.file.bytes == size


def test_concurrent_parts_never_exceed_the_declared_size(client: OpenAI) -> None:
    """Each part fits alone, not together: the room is checked again under the upload's
    lock when a part is recorded, so only one of parts sent at once is kept."""
    from concurrent.futures import ThreadPoolExecutor

    upload_id = _create(client, 3 * MB)
    payload = b"x" * (2 * MB)

    def send() -> str:
        try:
            return client.uploads.parts.create(upload_id=upload_id, data=payload).id
        except openai.BadRequestError:
            return ""

    with ThreadPoolExecutor(4) as pool:
        kept = [p for p in pool.map(lambda _: send(), range(4)) if p]
    assert len(kept) == 1
    with pytest.raises(openai.BadRequestError) as info:
        client.uploads.complete(upload_id=upload_id, part_ids=kept)
    assert _error(info.value)["param"] == "part_ids"  # 2 MB of the 3 declared
