"""Vector stores end to end with the official SDK: stores, files, file batches and search.

Documents (PDF, DOCX, Markdown) are generated here, each with one distinctive sentence, so
searches and citations can be checked against text the test itself wrote. The document
helpers at the top are shared with ``test_file_search_runs.py``.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docx
import httpx
import openai
import psycopg
import pytest
from fpdf import FPDF
from openai import OpenAI
from openai.types import VectorStore
from openai.types.vector_stores import VectorStoreFile

from tests.conftest import Database, ServerProcess, mint_key
from tests.support.runs import bounded, wait_until

POLL_MS = 50

STORE_KEYS = {
    "id",
    "object",
    "created_at",
    "name",
    "usage_bytes",
    "file_counts",
    "status",
    "expires_after",
    "expires_at",
    "last_active_at",
    "metadata",
}
STORE_FILE_KEYS = {
    "id",
    "object",
    "usage_bytes",
    "created_at",
    "vector_store_id",
    "status",
    "last_error",
    "chunking_strategy",
    "attributes",
}
BATCH_KEYS = {"id", "object", "created_at", "vector_store_id", "status", "file_counts"}
COUNT_KEYS = {"in_progress", "completed", "failed", "cancelled", "total"}

PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4b20000000049454e44ae426082"
)
CORRUPT_PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nthis is not a pdf \x00\xff"


# ---- documents (shared with test_file_search_runs.py) --------------------------------------


@dataclass(frozen=True)
class Doc:
    """A generated document: its name, bytes, the text put in it, and its key sentence."""

    filename: str
    data: bytes
    text: str
    sentence: str
    question: str


PDF_SENTENCE = "The Zorbex turbine must be lubricated with heliotrope grease every forty-one days."
DOCX_SENTENCE = "Employees may bring a ferret named Pistachio to the office on alternate Thursdays."
MD_SENTENCE = "The lighthouse keeper on Inishmurray counts exactly 212 puffins every morning."

PDF_FILLER = [
    "This maintenance manual covers the installation of industrial equipment in cold rooms.",
    "Technicians should wear gloves and eye protection while the housing is open.",
    "Record every inspection in the logbook kept beside the control cabinet.",
    "Spare fuses are stored in the grey drawer under the workbench.",
    "Replace the air filter whenever the pressure indicator turns amber.",
    "Vibration above the marked line means the mounting bolts must be tightened.",
    "The emergency stop button is red and sits at knee height on the left panel.",
    "Cable trays must never be used as a step or a shelf for tools.",
    "Firmware updates are installed only during the Sunday maintenance window.",
    "A second technician signs off every repair that touches the high voltage bus.",
    "Condensation on the coolant pipes is normal during the first hour of operation.",
    "Keep the service hatch closed while the rotor is spinning.",
    "Worn drive belts squeal loudly and should be replaced in pairs.",
]
DOCX_FILLER = [
    "This handbook describes the workplace rules of the Lisbon office.",
    "Holiday requests are approved by the team lead at least two weeks in advance.",
    "The kitchen is cleaned every Friday afternoon by a rotating volunteer.",
    "Visitors sign in at reception and wear a badge at all times.",
    "Expense claims need a receipt and are paid with the next salary.",
    "Meeting rooms are booked through the shared calendar.",
    "Laptops are locked away in the cabinets when leaving for the night.",
    "The library corner offers quiet desks that cannot be reserved.",
    "Bicycles are parked in the courtyard rack behind the main entrance.",
    "New colleagues are paired with a buddy for their first month.",
    "Printer paper and toner are ordered by the office manager on Mondays.",
    "Remote work is possible for up to two days each week.",
    "Fire drills take place twice a year without advance notice.",
]
MD_FILLER = [
    "These field notes record seabird observations along the western coast.",
    "Gannets dive from great heights to catch mackerel near the cliffs.",
    "Storm petrels return to their burrows only after dark.",
    "Kittiwakes nest on narrow ledges above the breaking waves.",
    "Counts are entered in the survey spreadsheet every evening.",
    "Binoculars must be dried carefully after a day of rain.",
    "Razorbills and guillemots share the crowded ledges of the southern stack.",
    "Fulmars glide along the cliff edge without flapping their wings.",
    "Shags dry their outstretched wings on the rocks after fishing.",
    "Arctic terns defend their nests fiercely against walkers.",
    "Cormorants fly low over the water in long ragged lines.",
    "Oystercatchers probe the wet sand with their bright orange bills.",
    "Great skuas chase other birds until they drop their catch.",
]


def _body(filler: list[str], sentence: str) -> list[str]:
    """Filler sentences with the key sentence in the middle."""
    half = len(filler) // 2
    return [*filler[:half], sentence, *filler[half:]]


def make_pdf(lines: list[str]) -> bytes:
    """A real PDF (fpdf2) holding ``lines`` as paragraphs."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for line in lines:
        pdf.multi_cell(0, 6, line)
        pdf.ln(2)
    return bytes(pdf.output())


def make_docx(lines: list[str]) -> bytes:
    """A real DOCX (python-docx) with one paragraph per line."""
    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def documents() -> list[Doc]:
    """The PDF, DOCX and Markdown documents, each with a distinctive sentence."""
    pdf_lines = _body(PDF_FILLER, PDF_SENTENCE)
    docx_lines = _body(DOCX_FILLER, DOCX_SENTENCE)
    md_lines = _body(MD_FILLER, MD_SENTENCE)
    md_text = "# Seabird field notes\n\n" + "\n\n".join(md_lines) + "\n"
    return [
        Doc(
            "manual.pdf",
            make_pdf(pdf_lines),
            " ".join(pdf_lines),
            PDF_SENTENCE,
            "How often does the Zorbex turbine need heliotrope grease?",
        ),
        Doc(
            "policy.docx",
            make_docx(docx_lines),
            " ".join(docx_lines),
            DOCX_SENTENCE,
            "Which days can staff bring the ferret Pistachio to work?",
        ),
        Doc(
            "notes.md",
            md_text.encode(),
            md_text,
            MD_SENTENCE,
            "How many puffins does the Inishmurray lighthouse keeper count?",
        ),
    ]


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces."""
    return re.sub(r"\s+", " ", text).strip()


def upload(client: OpenAI, name: str, data: bytes) -> str:
    """Upload bytes as an ``assistants`` File; return its id."""
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def wait_store_idle(client: OpenAI, store_id: str, timeout: float = 30.0) -> VectorStore:
    """Poll the store until no file is in progress."""

    def check() -> VectorStore | None:
        store = client.vector_stores.retrieve(store_id)
        return store if store.file_counts.in_progress == 0 else None

    return wait_until(check, timeout, f"vector store {store_id} to finish ingesting")


@dataclass
class Corpus:
    """A vector store holding the three documents (with attributes), in its own project."""

    client: OpenAI
    store_id: str
    file_ids: dict[str, str]  # filename -> file id
    docs: dict[str, Doc]  # filename -> document


ATTRIBUTES: dict[str, dict[str, str | float | bool]] = {
    "manual.pdf": {"kind": "manual", "year": 2021, "team": "ops", "draft": False},
    "policy.docx": {"kind": "policy", "year": 2023, "team": "hr", "draft": True},
    "notes.md": {"kind": "notes", "year": 2025, "team": "ops", "draft": False},
}


def build_corpus(client: OpenAI) -> Corpus:
    """Upload the documents into a new store in 100-token chunks (several per document)."""
    docs = {d.filename: d for d in documents()}
    store = client.vector_stores.create(name="corpus")
    batch = bounded(
        lambda: client.vector_stores.file_batches.upload_and_poll(
            store.id,
            files=[(d.filename, io.BytesIO(d.data)) for d in docs.values()],
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
            },
            poll_interval_ms=POLL_MS,
        )
    )
    assert batch.file_counts.completed == 3, batch.file_counts
    files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    file_ids: dict[str, str] = {}
    for f in files.data:
        name = client.files.retrieve(f.id).filename
        file_ids[name] = f.id
        client.vector_stores.files.update(
            f.id, vector_store_id=store.id, attributes=ATTRIBUTES[name]
        )
    assert set(file_ids) == set(docs)
    return Corpus(client, store.id, file_ids, docs)


@pytest.fixture(scope="module")
def corpus(server: ServerProcess, database: Database) -> Iterator[Corpus]:
    """One store with the documents, shared by the search tests of this module."""
    key = mint_key(database.url, f"corpus-{uuid.uuid4().hex[:12]}")
    client = OpenAI(base_url=server.api, api_key=key, max_retries=0)
    yield build_corpus(client)
    client.close()


def search_ids(corpus: Corpus, query: Any, **kwargs: Any) -> list[str]:
    """File ids of the search hits, in order."""
    page = corpus.client.vector_stores.search(corpus.store_id, query=query, **kwargs)
    return [hit.file_id for hit in page.data]


# ---- stores -----------------------------------------------------------------------------------


def test_store_crud_and_wire_shape(client: OpenAI, http: httpx.Client) -> None:
    md = upload(client, "a.md", b"# A\n\nAlpha bravo charlie delta echo foxtrot.\n")
    before = int(time.time())
    store = client.vector_stores.create(
        name="Support FAQ",
        metadata={"team": "support"},
        expires_after={"anchor": "last_active_at", "days": 3},
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 100},
        },
        file_ids=[md],
    )
    after = int(time.time())
    assert store.id.startswith("vs_")
    assert store.object == "vector_store"
    assert store.name == "Support FAQ"
    assert store.metadata == {"team": "support"}
    assert before <= store.created_at <= after
    assert store.expires_after is not None
    assert store.expires_after.anchor == "last_active_at"
    assert store.expires_after.days == 3
    assert store.last_active_at is not None
    assert store.expires_at == store.last_active_at + 3 * 86_400
    assert store.file_counts.total == 1

    idle = wait_store_idle(client, store.id)
    assert idle.status == "completed"
    assert idle.file_counts.completed == 1
    assert idle.file_counts.in_progress == 0
    assert idle.usage_bytes > 0

    raw = http.get(f"/vector_stores/{store.id}").json()
    assert set(raw) == STORE_KEYS
    assert set(raw["file_counts"]) == COUNT_KEYS
    assert raw["object"] == "vector_store"
    assert raw["expires_after"] == {"anchor": "last_active_at", "days": 3}

    # The store's chunking_strategy applies to its initial files.
    vs_file = client.vector_stores.files.retrieve(md, vector_store_id=store.id)
    assert vs_file.chunking_strategy is not None
    assert vs_file.chunking_strategy.type == "static"
    assert vs_file.chunking_strategy.static.max_chunk_size_tokens == 300
    assert vs_file.chunking_strategy.static.chunk_overlap_tokens == 100
    raw_file = http.get(f"/vector_stores/{store.id}/files/{md}").json()
    assert set(raw_file) == STORE_FILE_KEYS
    assert raw_file["object"] == "vector_store.file"

    retrieved = client.vector_stores.retrieve(store.id)
    assert retrieved.id == store.id
    assert retrieved.name == "Support FAQ"

    renamed = client.vector_stores.update(
        store.id, name="Renamed", metadata={"team": "docs", "tier": "1"}
    )
    assert renamed.name == "Renamed"
    assert renamed.metadata == {"team": "docs", "tier": "1"}
    assert renamed.expires_after is not None  # untouched by an update that omits it
    assert renamed.expires_at is not None

    extended = client.vector_stores.update(
        store.id, expires_after={"anchor": "last_active_at", "days": 30}
    )
    assert extended.expires_after is not None
    assert extended.expires_after.days == 30
    assert extended.last_active_at is not None
    assert extended.expires_at == extended.last_active_at + 30 * 86_400
    assert extended.name == "Renamed"

    # expires_after: null removes the expiry.
    cleared = client.vector_stores.update(store.id, expires_after=None)
    assert cleared.expires_after is None
    assert cleared.expires_at is None
    raw = http.get(f"/vector_stores/{store.id}").json()
    assert "expires_after" not in raw  # optional, not nullable, in the spec
    assert raw["expires_at"] is None
    assert raw["name"] == "Renamed"

    deleted = client.vector_stores.delete(store.id)
    assert deleted.id == store.id
    assert deleted.deleted is True
    assert deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.list(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.delete(store.id)
    # The store's File survives.
    assert client.files.retrieve(md).id == md


def test_unnamed_store_has_the_spec_types(http: httpx.Client) -> None:
    """``name`` is a string and ``expires_after`` absent rather than ``null`` (spec types)."""
    created = http.post("/vector_stores", json={}).json()
    for raw in (created, http.get(f"/vector_stores/{created['id']}").json()):
        assert raw["name"] == ""
        assert "expires_after" not in raw
        assert raw["expires_at"] is None
    listed = http.get("/vector_stores").json()["data"]
    assert [(s["name"], "expires_after" in s) for s in listed] == [("", False)]


def test_list_stores_paginates(client: OpenAI) -> None:
    ids = [client.vector_stores.create(name=f"s{i}").id for i in range(5)]

    first = client.vector_stores.list(limit=2, order="asc")
    assert [s.id for s in first.data] == ids[:2]
    assert first.has_more is True
    second = client.vector_stores.list(limit=2, order="asc", after=ids[1])
    assert [s.id for s in second.data] == ids[2:4]
    assert second.has_more is True
    last = client.vector_stores.list(limit=2, order="asc", after=ids[3])
    assert [s.id for s in last.data] == ids[4:]
    assert last.has_more is False

    newest_first = client.vector_stores.list(limit=3)
    assert [s.id for s in newest_first.data] == ids[::-1][:3]
    before = client.vector_stores.list(limit=2, order="asc", before=ids[4])
    assert [s.id for s in before.data] == ids[2:4]

    # The SDK's auto-paging walks every page.
    assert [s.id for s in client.vector_stores.list(limit=2, order="asc")] == ids


def test_other_projects_store_is_not_found(client: OpenAI, other_client: OpenAI) -> None:
    md = upload(client, "mine.md", b"Only my project may read this sentence about otters.\n")
    store = client.vector_stores.create(name="mine", file_ids=[md])
    wait_store_idle(client, store.id)

    calls: list[Callable[[], object]] = [
        lambda: other_client.vector_stores.retrieve(store.id),
        lambda: other_client.vector_stores.update(store.id, name="stolen"),
        lambda: other_client.vector_stores.search(store.id, query="otters"),
        lambda: other_client.vector_stores.files.list(store.id),
        lambda: other_client.vector_stores.files.retrieve(md, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.content(md, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.delete(md, vector_store_id=store.id),
        lambda: other_client.vector_stores.delete(store.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert store.id not in [s.id for s in other_client.vector_stores.list()]
    # Nothing changed for the owner.
    mine = client.vector_stores.retrieve(store.id)
    assert mine.name == "mine"
    assert mine.file_counts.completed == 1
    assert client.vector_stores.search(store.id, query="otters").data


# ---- files --------------------------------------------------------------------------------------


def test_store_files_lifecycle(client: OpenAI, http: httpx.Client) -> None:
    text = "# Recipes\n\nThe saffron risotto needs exactly nineteen minutes of stirring.\n"
    good = upload(client, "recipes.md", text.encode())
    bad = upload(client, "broken.pdf", CORRUPT_PDF)
    store = client.vector_stores.create(name="files")

    done = bounded(
        lambda: client.vector_stores.files.create_and_poll(
            good,
            vector_store_id=store.id,
            attributes={"author": "ada", "year": 2024, "draft": False},
            poll_interval_ms=POLL_MS,
        )
    )
    assert isinstance(done, VectorStoreFile)
    assert done.id == good
    assert done.object == "vector_store.file"
    assert done.vector_store_id == store.id
    assert done.status == "completed"
    assert done.last_error is None
    assert done.usage_bytes > 0
    assert done.attributes == {"author": "ada", "year": 2024, "draft": False}
    assert done.chunking_strategy is not None
    assert done.chunking_strategy.type == "static"
    assert done.chunking_strategy.static.max_chunk_size_tokens == 800
    assert done.chunking_strategy.static.chunk_overlap_tokens == 400

    failed = bounded(
        lambda: client.vector_stores.files.create_and_poll(
            bad, vector_store_id=store.id, poll_interval_ms=POLL_MS
        )
    )
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == "invalid_file"
    assert failed.last_error.message

    completed = client.vector_stores.files.list(store.id, filter="completed")
    assert [f.id for f in completed.data] == [good]
    failures = client.vector_stores.files.list(store.id, filter="failed")
    assert [f.id for f in failures.data] == [bad]
    assert client.vector_stores.files.list(store.id, filter="in_progress").data == []
    assert {f.id for f in client.vector_stores.files.list(store.id)} == {good, bad}
    first = client.vector_stores.files.list(store.id, limit=1, order="asc")
    assert [f.id for f in first.data] == [good]
    assert first.has_more is True
    rest = client.vector_stores.files.list(store.id, limit=1, order="asc", after=good)
    assert [f.id for f in rest.data] == [bad]
    assert rest.has_more is False

    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (1, 1, 0, 2)

    got = client.vector_stores.files.retrieve(good, vector_store_id=store.id)
    assert got.id == good
    assert got.status == "completed"
    raw = http.get(f"/vector_stores/{store.id}/files/{bad}").json()
    assert set(raw) == STORE_FILE_KEYS
    assert raw["last_error"]["code"] == "invalid_file"
    raw_good = http.get(f"/vector_stores/{store.id}/files/{good}").json()
    assert raw_good["attributes"] == {"author": "ada", "year": 2024, "draft": False}
    assert type(raw_good["attributes"]["year"]) is int  # echoed as sent, not 2024.0

    updated = client.vector_stores.files.update(
        good, vector_store_id=store.id, attributes={"author": "grace", "rank": 3.5}
    )
    assert updated.attributes == {"author": "grace", "rank": 3.5}
    assert client.vector_stores.files.retrieve(good, vector_store_id=store.id).attributes == {
        "author": "grace",
        "rank": 3.5,
    }

    content = client.vector_stores.files.content(good, vector_store_id=store.id)
    joined = "".join(part.text or "" for part in content.data)
    assert all(part.type == "text" for part in content.data)
    assert "saffron risotto needs exactly nineteen minutes" in normalise(joined)
    raw_content = http.get(f"/vector_stores/{store.id}/files/{good}/content").json()
    assert raw_content["object"] == "vector_store.file_content.page"

    # Adding the same file again is idempotent: same object, no second copy, chunks kept.
    again = client.vector_stores.files.create(store.id, file_id=good)
    assert again.id == good
    assert again.status == "completed"
    assert again.created_at == done.created_at
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="completed")] == [good]
    assert client.vector_stores.retrieve(store.id).file_counts.total == 2
    hits = client.vector_stores.search(store.id, query="saffron risotto stirring minutes")
    assert [h.file_id for h in hits.data] == [good]

    deleted = client.vector_stores.files.delete(good, vector_store_id=store.id)
    assert deleted.id == good
    assert deleted.deleted is True
    assert deleted.object == "vector_store.file.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(good, vector_store_id=store.id)
    assert client.files.retrieve(good).id == good  # the File itself survives
    assert client.vector_stores.search(store.id, query="saffron risotto").data == []
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1


def test_deleting_the_file_removes_it_from_stores(client: OpenAI) -> None:
    keep = upload(client, "keep.md", b"Kestrels hover above the motorway verge at dawn.\n")
    gone = upload(client, "gone.md", b"Quokkas on Rottnest Island appear to smile at tourists.\n")
    stores = [client.vector_stores.create(name=f"s{i}", file_ids=[keep, gone]) for i in range(2)]
    for store in stores:
        assert wait_store_idle(client, store.id).file_counts.completed == 2

    assert client.files.delete(gone).deleted is True

    for store in stores:
        assert {f.id for f in client.vector_stores.files.list(store.id)} == {keep}
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.files.retrieve(gone, vector_store_id=store.id)
        counts = client.vector_stores.retrieve(store.id).file_counts
        assert (counts.completed, counts.total) == (1, 1)
        hits = client.vector_stores.search(store.id, query="quokkas smile Rottnest")
        assert gone not in {h.file_id for h in hits.data}


# ---- file batches -------------------------------------------------------------------------------


def test_batch_create_and_poll_with_file_ids(client: OpenAI, http: httpx.Client) -> None:
    ids = [
        upload(client, f"n{i}.txt", f"Note {i}: the tide table lists {i} high waters.\n".encode())
        for i in range(3)
    ]
    store = client.vector_stores.create(name="batch")
    batch = bounded(
        lambda: client.vector_stores.file_batches.create_and_poll(
            store.id,
            file_ids=ids,
            attributes={"source": "notes"},
            poll_interval_ms=POLL_MS,
        )
    )
    assert batch.id.startswith("vsfb_")
    assert batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == store.id
    assert batch.status == "completed"
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (3, 0, 0, 3)

    raw = http.get(f"/vector_stores/{store.id}/file_batches/{batch.id}").json()
    assert set(raw) == BATCH_KEYS
    assert set(raw["file_counts"]) == COUNT_KEYS
    assert raw["object"] == "vector_store.files_batch"

    retrieved = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert retrieved.id == batch.id
    assert retrieved.status == "completed"
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {f.id for f in listed.data} == set(ids)
    assert all(f.attributes == {"source": "notes"} for f in listed.data)
    page = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, limit=2, order="asc"
    )
    assert len(page.data) == 2
    assert page.has_more is True
    assert (
        client.vector_stores.file_batches.list_files(
            batch.id, vector_store_id=store.id, filter="failed"
        ).data
        == []
    )
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_missing", vector_store_id=store.id)


def test_upload_and_poll_formats_with_failures(client: OpenAI, http: httpx.Client) -> None:
    docs = documents()
    store = client.vector_stores.create(name="formats")
    files = [(d.filename, io.BytesIO(d.data)) for d in docs]
    files += [("broken.pdf", io.BytesIO(CORRUPT_PDF)), ("pixel.png", io.BytesIO(PNG_BYTES))]
    batch = bounded(
        lambda: client.vector_stores.file_batches.upload_and_poll(
            store.id, files=files, poll_interval_ms=POLL_MS
        )
    )
    counts = batch.file_counts
    assert (counts.completed, counts.failed, counts.in_progress, counts.total) == (3, 2, 0, 5)
    assert counts.cancelled == 0
    assert batch.status == "completed"  # some files failed, not all

    names = {f.id: f.filename for f in client.files.list(purpose="assistants")}
    failed = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="failed"
    )
    errors = {names[f.id]: f.last_error.code for f in failed.data if f.last_error}
    assert errors == {"broken.pdf": "invalid_file", "pixel.png": "unsupported_file"}
    completed = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="completed"
    )
    assert {names[f.id] for f in completed.data} == {d.filename for d in docs}
    assert all(f.usage_bytes > 0 for f in completed.data)
    assert all(f.last_error is None for f in completed.data)

    vs = client.vector_stores.retrieve(store.id)
    assert vs.usage_bytes == sum(f.usage_bytes for f in completed.data) > 0
    assert (vs.file_counts.completed, vs.file_counts.failed, vs.file_counts.total) == (3, 2, 5)
    assert vs.status == "completed"

    # The parsed text of each format holds the sentence the test wrote.
    for f in completed.data:
        doc = next(d for d in docs if d.filename == names[f.id])
        parts = client.vector_stores.files.content(f.id, vector_store_id=store.id).data
        assert normalise(doc.sentence) in normalise(" ".join(p.text or "" for p in parts))
        first = client.vector_stores.search(store.id, query=doc.question).data[0]
        assert first.file_id == f.id, (doc.filename, first.filename)
        assert first.filename == doc.filename


def test_batch_cancel(client: OpenAI, http: httpx.Client) -> None:
    # The worker ingests one file at a time, so most of these are still pending when the
    # cancel arrives a moment after the batch is created.
    paragraph = "Sediment cores from the delta record centuries of floods and droughts. "
    ids = [
        upload(client, f"core{i}.txt", (f"Core {i}. " + paragraph * 20).encode()) for i in range(8)
    ]
    store = client.vector_stores.create(name="cancel")
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    assert batch.status == "in_progress"
    assert batch.file_counts.total == 8
    assert batch.file_counts.in_progress >= 1

    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.id == batch.id
    assert cancelled.object == "vector_store.files_batch"

    def settled() -> Any:
        b = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
        return b if b.file_counts.in_progress == 0 else None

    final = wait_until(settled, 30, "the cancelled batch to settle")
    assert final.status == "cancelled"
    counts = final.file_counts
    assert counts.cancelled >= 1
    assert counts.completed + counts.cancelled + counts.failed == counts.total == 8
    listed = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="cancelled"
    )
    assert len(listed.data) == counts.cancelled
    assert all(f.status == "cancelled" for f in listed.data)
    raw = http.get(f"/vector_stores/{store.id}/file_batches/{batch.id}").json()
    assert set(raw) == BATCH_KEYS
    assert raw["status"] == "cancelled"
    # Cancelled files stay cancelled (no worker picks them up later).
    time.sleep(0.5)
    again = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert again.file_counts.cancelled == counts.cancelled
    assert again.file_counts.in_progress == 0


# ---- search ---------------------------------------------------------------------------------


def test_search_ranks_the_right_file_first(corpus: Corpus, http: httpx.Client) -> None:
    for name, doc in corpus.docs.items():
        page = corpus.client.vector_stores.search(corpus.store_id, query=doc.question)
        assert page.data, name
        top = page.data[0]
        assert top.file_id == corpus.file_ids[name], (name, [h.filename for h in page.data])
        assert top.filename == name
        assert top.attributes == ATTRIBUTES[name]
        text = normalise(" ".join(c.text for c in top.content))
        # The answer is in the top chunk (a token-cut chunk may end before its full stop).
        assert normalise(doc.sentence).rstrip(".") in text
        assert all(c.type == "text" for c in top.content)


def test_search_page_wire_shape(corpus: Corpus) -> None:
    raw = corpus.client.vector_stores.with_raw_response.search(
        corpus.store_id, query="puffins"
    ).http_response.json()
    assert set(raw) == {"object", "search_query", "data", "has_more", "next_page"}
    assert raw["object"] == "vector_store.search_results.page"
    assert raw["search_query"] == ["puffins"]
    assert raw["has_more"] is False
    assert raw["next_page"] is None
    assert raw["data"]
    for hit in raw["data"]:
        assert set(hit) == {"file_id", "filename", "score", "attributes", "content"}


def test_search_scores_and_max_num_results(corpus: Corpus) -> None:
    question = corpus.docs["manual.pdf"].question
    default = corpus.client.vector_stores.search(corpus.store_id, query=question).data
    everything = corpus.client.vector_stores.search(
        corpus.store_id, query=question, max_num_results=50
    ).data
    assert len(everything) >= 9  # several chunks per document
    assert {h.file_id for h in everything} == set(corpus.file_ids.values())
    assert len(default) == min(10, len(everything))  # the default limit
    scores = [h.score for h in default]
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores
    assert scores[0] > scores[-1]
    # Also when full-text matches lift chunks of lower cosine similarity (the keyword arm).
    for terse in ("ferret Pistachio", "seabirds", "puffins Inishmurray", "turbine"):
        ranked = [
            h.score
            for h in corpus.client.vector_stores.search(
                corpus.store_id, query=terse, max_num_results=50
            ).data
        ]
        assert ranked, terse
        assert all(0.0 <= s <= 1.0 for s in ranked), (terse, ranked)
        assert ranked == sorted(ranked, reverse=True), (terse, ranked)

    for n in (1, 2, 5):
        hits = corpus.client.vector_stores.search(
            corpus.store_id, query=question, max_num_results=n
        ).data
        assert len(hits) == n
        assert [h.score for h in hits] == scores[:n]

    # score_threshold drops the hits below it, and keeps those above.
    cut = (scores[0] + scores[-1]) / 2
    kept = corpus.client.vector_stores.search(
        corpus.store_id,
        query=question,
        ranking_options={"score_threshold": cut},
    ).data
    assert kept
    assert all(h.score >= cut for h in kept)
    assert len(kept) == sum(1 for s in scores if s >= cut)
    assert kept[0].file_id == corpus.file_ids["manual.pdf"]
    none = corpus.client.vector_stores.search(
        corpus.store_id, query=question, ranking_options={"score_threshold": 1.0}
    ).data
    assert none == []


def test_search_filters(corpus: Corpus) -> None:
    ids = corpus.file_ids
    query = "notes manual policy office turbine seabirds"

    def found(filters: Any) -> set[str]:
        return set(search_ids(corpus, query, filters=filters, max_num_results=50))

    assert found({"type": "eq", "key": "kind", "value": "policy"}) == {ids["policy.docx"]}
    assert found({"type": "ne", "key": "kind", "value": "policy"}) == {
        ids["manual.pdf"],
        ids["notes.md"],
    }
    assert found({"type": "in", "key": "team", "value": ["ops"]}) == {
        ids["manual.pdf"],
        ids["notes.md"],
    }
    assert found({"type": "in", "key": "kind", "value": ["policy", "notes"]}) == {
        ids["policy.docx"],
        ids["notes.md"],
    }
    assert found({"type": "nin", "key": "kind", "value": ["policy", "notes"]}) == {
        ids["manual.pdf"]
    }
    assert found({"type": "gt", "key": "year", "value": 2022}) == {
        ids["policy.docx"],
        ids["notes.md"],
    }
    assert found({"type": "gte", "key": "year", "value": 2025}) == {ids["notes.md"]}
    assert found({"type": "lt", "key": "year", "value": 2023}) == {ids["manual.pdf"]}
    assert found({"type": "eq", "key": "draft", "value": True}) == {ids["policy.docx"]}
    assert found({"type": "eq", "key": "kind", "value": "nothing"}) == set()
    assert found(
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "team", "value": "ops"},
                {"type": "gt", "key": "year", "value": 2022},
            ],
        }
    ) == {ids["notes.md"]}
    assert found(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "kind", "value": "manual"},
                {"type": "eq", "key": "kind", "value": "policy"},
            ],
        }
    ) == {ids["manual.pdf"], ids["policy.docx"]}
    assert found(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "team", "value": "hr"},
                {
                    "type": "and",
                    "filters": [
                        {"type": "eq", "key": "team", "value": "ops"},
                        {"type": "lt", "key": "year", "value": 2022},
                    ],
                },
            ],
        }
    ) == {ids["policy.docx"], ids["manual.pdf"]}

    # A filter narrows even a question that is about another file.
    pdf_question = corpus.docs["manual.pdf"].question
    hits = search_ids(corpus, pdf_question, filters={"type": "eq", "key": "kind", "value": "notes"})
    assert hits
    assert set(hits) == {ids["notes.md"]}


def test_search_with_a_list_of_queries(corpus: Corpus) -> None:
    pdf, md = corpus.docs["manual.pdf"], corpus.docs["notes.md"]
    page = corpus.client.vector_stores.with_raw_response.search(
        corpus.store_id, query=[pdf.question, md.question], max_num_results=4
    ).http_response.json()
    assert page["search_query"] == [pdf.question, md.question]
    assert len(page["data"]) == 4
    # The best chunk of each query alone is among the top hits of both together.
    found = [normalise(" ".join(c["text"] for c in hit["content"])) for hit in page["data"]]
    for doc in (pdf, md):
        (best,) = corpus.client.vector_stores.search(
            corpus.store_id, query=doc.question, max_num_results=1
        ).data
        assert best.file_id == corpus.file_ids[doc.filename]
        assert normalise(" ".join(c.text for c in best.content)) in found, doc.filename
    assert {hit["file_id"] for hit in page["data"]} >= {
        corpus.file_ids["manual.pdf"],
        corpus.file_ids["notes.md"],
    }


def test_search_rewrite_query_asks_the_model(corpus: Corpus) -> None:
    """rewrite_query: the configured model rewrites the question (the scripted model answers
    with the rewrite the query carries), and the search runs with the rewrite."""
    pdf = corpus.docs["manual.pdf"]
    asked = "hey, I was wondering about something #script " + json.dumps({"reply": pdf.question})
    page = corpus.client.vector_stores.search(
        corpus.store_id, query=asked, rewrite_query=True, max_num_results=1
    )
    assert page.search_query == [pdf.question]
    assert page.data[0].file_id == corpus.file_ids["manual.pdf"]
    plain = corpus.client.vector_stores.search(corpus.store_id, query=asked, max_num_results=1)
    assert plain.search_query == [asked]


def test_expired_store_chunks_are_purged(client: OpenAI, database: Database) -> None:
    """Past its expiry a store is ``expired``, its chunks and vectors are deleted by the
    worker, its usage drops to zero, and using it does not bring it back."""
    store = client.vector_stores.create(name="short-lived")
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[("a.txt", io.BytesIO(b"Ephemeral facts about purple giraffes. " * 40))],
        poll_interval_ms=50,
    )
    assert batch.file_counts.completed == 1

    def chunks() -> int:
        with psycopg.connect(database.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM chunks WHERE vector_store_id = %s", (store.id,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    assert chunks() > 0
    assert client.vector_stores.retrieve(store.id).usage_bytes > 0
    with psycopg.connect(database.url) as conn:
        conn.execute(
            'UPDATE vector_stores SET expires_after = \'{"anchor": "last_active_at", '
            '"days": 1}\', expires_at = extract(epoch from now())::int - 10 WHERE id = %s',
            (store.id,),
        )
    deadline = time.monotonic() + 30
    while chunks() > 0:
        assert time.monotonic() < deadline, "the expired store's chunks were not purged"
        time.sleep(0.5)
    with psycopg.connect(database.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunk_embeddings WHERE vector_store_id = %s", (store.id,)
        ).fetchone()
    assert row == (0,)
    page = client.vector_stores.search(store.id, query="purple giraffes")
    assert page.data == []
    expired = client.vector_stores.retrieve(store.id)
    assert expired.status == "expired"
    assert expired.usage_bytes == 0
    assert expired.expires_at is not None
    assert expired.expires_at < time.time()  # the search did not revive it


def test_a_small_file_is_not_stuck_behind_large_ones(client: OpenAI) -> None:
    """Small pending files are ingested first (and files are ingested two at a time), so an
    attachment does not wait for every large file queued before it."""
    line = b"Line %d of a long maintenance manual about harbour cranes and their winches.\n"
    large = b"".join(line % i for i in range(16_000))
    ids = [upload(client, f"manual{i}.txt", large) for i in range(3)]
    small = upload(client, "note.txt", b"The crane key hangs in the blue cabinet.")
    store = client.vector_stores.create(name="queue")
    client.vector_stores.file_batches.create(store.id, file_ids=[*ids, small])

    def statuses() -> dict[str, str]:
        return {f.id: f.status for f in client.vector_stores.files.list(store.id, limit=10)}

    def small_done() -> dict[str, str] | None:
        found = statuses()
        return found if found.get(small) != "in_progress" else None

    seen = wait_until(small_done, timeout=60, what="the small file")
    assert seen[small] == "completed"
    assert [seen[i] for i in ids].count("completed") == 0, seen
    wait_until(lambda: set(statuses().values()) == {"completed"}, timeout=120, what="the rest")
