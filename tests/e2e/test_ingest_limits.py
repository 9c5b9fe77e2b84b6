"""Decompression bombs added to a vector store, on ``assistd serve`` with its in-process
worker: each file fails with the limit it broke named, the server process's memory stays
put, ``/health`` answers throughout, and files added afterwards are ingested as usual."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.vector_stores import VectorStoreFile

from tests.conftest import ServerProcess, own_server, stop_server
from tests.support.bombs import docx_bomb, pdf_bomb
from tests.support.memory import status_kb

MAX_GROWTH_KB = 256 * 1024
NOTE = b"# Harbour\n\nThe lighthouse keeper logs every passing ship in a green ledger.\n"


@pytest.fixture(scope="module")
def serve(
    pg_root: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, OpenAI]]:
    """``assistd serve`` with its worker, on a database of its own (so this process does
    the ingesting), warmed up by one ordinary file (parser, tokenizer and embedder loaded)."""
    data = tmp_path_factory.mktemp("ingest-limits")
    proc, client = own_server(
        pg_root, {**server_env, "ASSISTD_DATA_DIR": str(data)}, Path(data) / "log"
    )
    try:
        store = client.vector_stores.create(name="warm-up")
        assert ingest(client, store.id, "warm.md", NOTE).status == "completed"
        yield proc, client
    finally:
        client.close()
        stop_server(proc)


def ingest(client: OpenAI, store_id: str, name: str, data: bytes) -> VectorStoreFile:
    """Upload ``data``, add it to the store and wait until its ingestion ends."""
    file = client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
    client.vector_stores.files.create(vector_store_id=store_id, file_id=file.id)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = client.vector_stores.files.retrieve(file.id, vector_store_id=store_id)
        if found.status != "in_progress":
            return found
        time.sleep(0.1)
    raise AssertionError(f"{name} still in progress after 240 s")


class HealthProbe:
    """Calls ``/health`` every 50 ms in a thread; records each answer's status and time."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: list[tuple[int, float]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = http.get("/health").status_code
                    self.answers.append((status, time.monotonic() - started))
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self._stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize(
    ("name", "make", "limit"),
    [
        # PDFium aborts when the parser process runs out of its 192 MiB memory budget.
        ("bomb.pdf", pdf_bomb, r"needed more than the 192 MiB memory limit"),
        ("bomb.docx", docx_bomb, r"word/document\.xml unpacks to .* the 64 MiB limit per part"),
    ],
)
def test_a_bomb_fails_on_its_limit_and_the_server_stays_small(
    serve: tuple[ServerProcess, OpenAI], name: str, make: Callable[[], bytes], limit: str
) -> None:
    server, client = serve
    data = make()
    assert len(data) < 1024 * 1024  # small on the wire, tens of megabytes decoded
    pid = server.process.pid
    before = status_kb(pid, "VmHWM")
    store = client.vector_stores.create(name=name)
    with HealthProbe(server.base_url) as probe:
        ended = ingest(client, store.id, name, data)
    grown = status_kb(pid, "VmHWM") - before

    assert ended.status == "failed"
    assert ended.last_error is not None
    assert ended.last_error.code == "invalid_file"
    assert re.search(limit, ended.last_error.message), ended.last_error.message
    assert grown <= MAX_GROWTH_KB, f"server peak memory grew by {grown // 1024} MB"
    assert server.process.poll() is None
    assert not probe.failures, probe.failures
    assert len(probe.answers) >= 5
    assert all(status == 200 for status, _ in probe.answers)
    assert max(took for _, took in probe.answers) < 3.0


def test_files_after_the_bombs_are_ingested_and_found(serve: tuple[ServerProcess, OpenAI]) -> None:
    server, client = serve
    store = client.vector_stores.create(name="after")
    bomb = ingest(client, store.id, "again.pdf", pdf_bomb())
    assert bomb.status == "failed"
    done = ingest(client, store.id, "harbour.md", NOTE)
    assert done.status == "completed", done.last_error
    assert done.last_error is None
    hits = client.vector_stores.search(store.id, query="lighthouse keeper ledger")
    assert [hit.filename for hit in hits.data] == ["harbour.md"]
    assert "green ledger" in hits.data[0].content[0].text
    assert server.process.poll() is None
    assert "Traceback" not in server.log()
