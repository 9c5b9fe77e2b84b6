"""Files end to end: multipart uploads, byte-exact downloads, listing and deletion."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import openai
import psycopg
import pytest
from openai import OpenAI

from tests.conftest import Database

# Part of the scenario CI repeats with every supported openai SDK generation.
pytestmark = pytest.mark.sdk_matrix

FILE_KEYS = {
    "id",
    "object",
    "bytes",
    "created_at",
    "expires_at",
    "filename",
    "purpose",
    "status",
    "status_details",
}
CSV = b"name,score\nada,90\ngrace,95\n\xc3\xa9mile,88\n"
ALL_BYTES = bytes(range(256)) * 4


def test_upload_csv(client: OpenAI, http: httpx.Client) -> None:
    before = int(time.time())
    uploaded = client.files.create(file=("scores.csv", io.BytesIO(CSV)), purpose="assistants")
    after = int(time.time())
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.bytes == len(CSV)
    assert uploaded.filename == "scores.csv"
    assert uploaded.purpose == "assistants"
    assert uploaded.status == "processed"
    assert uploaded.status_details is None
    assert uploaded.expires_at is None
    assert before <= uploaded.created_at <= after

    raw = http.get(f"/files/{uploaded.id}")
    assert raw.status_code == 200
    assert raw.json() == {
        "id": uploaded.id,
        "object": "file",
        "bytes": len(CSV),
        "created_at": uploaded.created_at,
        "expires_at": None,
        "filename": "scores.csv",
        "purpose": "assistants",
        "status": "processed",
        "status_details": None,
    }
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == CSV
    assert client.files.wait_for_processing(uploaded.id, poll_interval=0.01).status == "processed"


def test_binary_content_is_byte_identical(client: OpenAI, http: httpx.Client) -> None:
    uploaded = client.files.create(
        file=("blob.bin", io.BytesIO(ALL_BYTES), "application/octet-stream"), purpose="user_data"
    )
    assert uploaded.bytes == len(ALL_BYTES)
    assert uploaded.purpose == "user_data"
    assert client.files.content(uploaded.id).content == ALL_BYTES
    resp = http.get(f"/files/{uploaded.id}/content")
    assert resp.status_code == 200
    assert resp.content == ALL_BYTES
    assert resp.headers["content-length"] == str(len(ALL_BYTES))


def test_empty_file(client: OpenAI) -> None:
    uploaded = client.files.create(file=("empty.txt", io.BytesIO(b"")), purpose="assistants")
    assert uploaded.bytes == 0
    assert client.files.content(uploaded.id).content == b""


@pytest.mark.parametrize(
    "filename",
    ["résumé (final) – 数据.txt", "emoji 🚀 file.md", "naïve café.csv"],
)
def test_unicode_filename(client: OpenAI, http: httpx.Client, filename: str) -> None:
    data = filename.encode()
    uploaded = client.files.create(file=(filename, io.BytesIO(data)), purpose="assistants")
    assert uploaded.filename == filename
    assert client.files.retrieve(uploaded.id).filename == filename
    assert http.get(f"/files/{uploaded.id}").json()["filename"] == filename
    assert client.files.content(uploaded.id).content == data
    listed = [f.filename for f in client.files.list() if f.id == uploaded.id]
    assert listed == [filename]


def test_expires_after(client: OpenAI, http: httpx.Client) -> None:
    uploaded = client.files.create(
        file=("temp.txt", io.BytesIO(b"temporary")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert uploaded.expires_at == uploaded.created_at + 3600
    body = http.get(f"/files/{uploaded.id}").json()
    assert set(body) == FILE_KEYS
    assert body["expires_at"] == body["created_at"] + 3600

    month = client.files.create(
        file=("month.txt", io.BytesIO(b"longer")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 2_592_000},
    )
    assert month.expires_at == month.created_at + 2_592_000


def test_list_filters_orders_and_pages(client: OpenAI, http: httpx.Client) -> None:
    assistants_ids = [
        client.files.create(file=(f"a{i}.txt", io.BytesIO(b"a")), purpose="assistants").id
        for i in range(3)
    ]
    vision_id = client.files.create(file=("v.png", io.BytesIO(b"v")), purpose="vision").id
    all_ids = [*assistants_ids[:2], assistants_ids[2], vision_id]

    page = http.get("/files").json()
    assert page["object"] == "list"
    assert [f["id"] for f in page["data"]] == list(reversed(all_ids))  # desc by default
    assert page["has_more"] is False
    assert all(set(f) == FILE_KEYS for f in page["data"])

    assert [f.id for f in client.files.list(order="asc")] == all_ids
    assert [f.id for f in client.files.list(order="desc")] == list(reversed(all_ids))

    only_assistants = client.files.list(purpose="assistants", order="asc")
    assert [f.id for f in only_assistants.data] == assistants_ids
    assert all(f.purpose == "assistants" for f in only_assistants.data)
    assert [f.id for f in client.files.list(purpose="vision").data] == [vision_id]
    assert client.files.list(purpose="batch").data == []

    first = client.files.list(order="asc", limit=2)
    assert [f.id for f in first.data] == all_ids[:2]
    assert first.has_more is True
    second = client.files.list(order="asc", limit=2, after=all_ids[1])
    assert [f.id for f in second.data] == all_ids[2:]
    assert second.has_more is False
    desc_after = client.files.list(order="desc", after=all_ids[2])
    assert [f.id for f in desc_after.data] == all_ids[1::-1]
    # The auto-pager follows `after` across pages.
    assert [f.id for f in client.files.list(order="asc", limit=1)] == all_ids
    assert [f.id for f in client.files.list(purpose="assistants", limit=1)] == list(
        reversed(assistants_ids)
    )


def test_delete(client: OpenAI, http: httpx.Client) -> None:
    doomed = client.files.create(file=("doomed.txt", io.BytesIO(b"bye")), purpose="assistants")
    keep = client.files.create(file=("keep.txt", io.BytesIO(b"hi")), purpose="assistants")

    resp = http.delete(f"/files/{doomed.id}")
    assert resp.status_code == 200
    assert resp.json() == {"id": doomed.id, "object": "file", "deleted": True}

    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(doomed.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(doomed.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(doomed.id)
    assert http.get(f"/files/{doomed.id}/content").status_code == 404
    assert [f.id for f in client.files.list()] == [keep.id]
    assert client.files.content(keep.id).content == b"hi"

    deleted = client.files.delete(keep.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (keep.id, "file", True)
    assert client.files.list().data == []


def test_expired_files_are_gone_and_deleted(
    client: OpenAI, http: httpx.Client, database: Database, server_env: dict[str, str]
) -> None:
    """Past ``expires_at`` a file answers 404 at once, and the worker deletes its row and
    bytes (a file without expiry beside it stays)."""
    doomed = client.files.create(
        file=("temp.txt", io.BytesIO(b"temporary")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    kept = client.files.create(file=("kept.txt", io.BytesIO(b"kept")), purpose="assistants")

    def storage_key() -> str | None:
        with psycopg.connect(database.url) as conn:
            row = conn.execute("SELECT storage_key FROM files WHERE id = %s", (doomed.id,))
            found = row.fetchone()
        return None if found is None else str(found[0])

    key = storage_key()
    assert key is not None
    with psycopg.connect(database.url) as conn:
        conn.execute(
            "UPDATE files SET expires_at = extract(epoch from now())::int - 1 WHERE id = %s",
            (doomed.id,),
        )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(doomed.id)
    assert http.get(f"/files/{doomed.id}/content").status_code == 404
    assert [f.id for f in client.files.list()] == [kept.id]

    deadline = time.monotonic() + 30
    while storage_key() is not None:
        assert time.monotonic() < deadline, "the expired file was not deleted"
        time.sleep(0.5)
    root = Path(server_env["ASSISTD_DATA_DIR"]) / "files"
    assert not (root / key).exists()
    assert client.files.content(kept.id).content == b"kept"
