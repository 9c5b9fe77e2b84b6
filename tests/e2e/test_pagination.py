"""Cursor pagination on assistants, messages and files.

Every page is checked for its shape (``object``, ``first_id``/``last_id`` matching ``data``,
``has_more`` a bool). Objects are created back to back, so several share a ``created_at``
second: insertion order must still hold (ids are random, so sorting by id would not).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import OpenAI


@dataclass
class Resource:
    """A listable resource, driven over raw HTTP."""

    name: str
    http: httpx.Client
    path: str
    create: Callable[[int], str]
    has_before: bool = True

    def make(self, n: int) -> list[str]:
        """Create ``n`` objects back to back; their ids in creation order."""
        return [self.create(i) for i in range(n)]

    def page(self, **params: Any) -> dict[str, Any]:
        """One list page, checked for its shape."""
        query = {k: v for k, v in params.items() if v is not None}
        response = self.http.get(self.path, params=query)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}
        assert body["object"] == "list"
        assert isinstance(body["has_more"], bool)
        data = body["data"]
        assert isinstance(data, list)
        if data:
            assert body["first_id"] == data[0]["id"]
            assert body["last_id"] == data[-1]["id"]
        else:
            assert body["first_id"] is None
            assert body["last_id"] is None
            assert body["has_more"] is False
        return body

    def ids(self, **params: Any) -> list[str]:
        """The ids of one page."""
        return [item["id"] for item in self.page(**params)["data"]]


def _assistants(http: httpx.Client) -> Resource:
    def create(i: int) -> str:
        response = http.post("/assistants", json={"model": "gpt-4o", "name": f"a{i}"})
        assert response.status_code == 200
        return str(response.json()["id"])

    return Resource("assistants", http, "/assistants", create)


def _messages(http: httpx.Client) -> Resource:
    thread = http.post("/threads", json={}).json()["id"]

    def create(i: int) -> str:
        response = http.post(
            f"/threads/{thread}/messages", json={"role": "user", "content": f"m{i}"}
        )
        assert response.status_code == 200
        return str(response.json()["id"])

    return Resource("messages", http, f"/threads/{thread}/messages", create)


def _files(http: httpx.Client) -> Resource:
    def create(i: int) -> str:
        response = http.post(
            "/files", data={"purpose": "assistants"}, files={"file": (f"f{i}.txt", b"x")}
        )
        assert response.status_code == 200
        return str(response.json()["id"])

    return Resource("files", http, "/files", create, has_before=False)


MAKERS: dict[str, Callable[[httpx.Client], Resource]] = {
    "assistants": _assistants,
    "messages": _messages,
    "files": _files,
}


@pytest.fixture(params=list(MAKERS))
def resource(request: pytest.FixtureRequest, http: httpx.Client) -> Resource:
    """Each listable resource in a fresh project (and, for messages, a fresh thread)."""
    return MAKERS[request.param](http)


@pytest.fixture
def five(resource: Resource) -> tuple[Resource, list[str]]:
    """Five objects created back to back, at least two sharing a ``created_at`` second."""
    ids = resource.make(5)
    stamps = [item["created_at"] for item in resource.page(order="asc")["data"]]
    assert len(stamps) == 5
    assert len(set(stamps)) < 5, "objects did not share a second; the tie case went untested"
    return resource, ids


def test_empty_list(resource: Resource) -> None:
    cases: list[dict[str, Any]] = [{}, {"order": "asc"}, {"limit": 1}, {"after": "x_missing"}]
    for params in cases:
        body = resource.page(**params)
        assert body["data"] == []
        assert body["has_more"] is False
    if resource.has_before:
        assert resource.page(before="x_missing")["data"] == []


def test_insertion_order_in_both_orders(five: tuple[Resource, list[str]]) -> None:
    res, ids = five
    assert res.ids() == ids[::-1]  # default order is desc
    assert res.ids(order="desc") == ids[::-1]
    assert res.ids(order="asc") == ids
    body = res.page(order="asc")
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[-1], False)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6])
def test_walk_with_after(five: tuple[Resource, list[str]], order: str, limit: int) -> None:
    """Paging with ``after=<last id>`` visits every object once; has_more iff more remain."""
    res, ids = five
    expected = ids if order == "asc" else ids[::-1]
    seen: list[str] = []
    after: str | None = None
    for _ in range(len(ids) + 1):
        body = res.page(order=order, limit=limit, after=after)
        page = [item["id"] for item in body["data"]]
        assert page == expected[len(seen) : len(seen) + limit]
        seen += page
        assert body["has_more"] is (len(seen) < len(ids))
        if not body["has_more"]:
            break
        after = page[-1]
    assert seen == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_each_cursor(five: tuple[Resource, list[str]], order: str) -> None:
    res, ids = five
    expected = ids if order == "asc" else ids[::-1]
    for i, cursor in enumerate(expected):
        assert res.ids(order=order, after=cursor) == expected[i + 1 :]
        body = res.page(order=order, after=cursor, limit=2)
        assert [d["id"] for d in body["data"]] == expected[i + 1 : i + 3]
        assert body["has_more"] is (i + 3 < len(ids))


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_before(five: tuple[Resource, list[str]], order: str) -> None:
    """``before`` pages toward the start; the page holds the items nearest the cursor."""
    res, ids = five
    if not res.has_before:
        # Files have no `before`: the parameter is ignored, the list is unaffected.
        assert res.ids(order=order, before=ids[2]) == (ids if order == "asc" else ids[::-1])
        return
    expected = ids if order == "asc" else ids[::-1]
    for i, cursor in enumerate(expected):
        assert res.ids(order=order, before=cursor) == expected[:i]
        body = res.page(order=order, before=cursor, limit=2)
        assert [d["id"] for d in body["data"]] == expected[max(0, i - 2) : i]
        assert body["has_more"] is (i > 2)
    # Walk back from the last object with `before=<first id of the page>`.
    seen: list[str] = []
    before = expected[-1]
    for _ in range(len(ids)):
        body = res.page(order=order, limit=2, before=before)
        page = [d["id"] for d in body["data"]]
        seen = page + seen
        assert body["has_more"] is (len(seen) < len(ids) - 1)
        if not body["has_more"]:
            break
        before = page[0]
    assert seen == expected[:-1]
    # `after` and `before` together bound a window.
    assert res.ids(order=order, after=expected[0], before=expected[4]) == expected[1:4]
    assert res.ids(order=order, after=expected[1], before=expected[2]) == []


def test_limit_honoured(five: tuple[Resource, list[str]]) -> None:
    res, ids = five
    for limit in range(1, 7):
        body = res.page(order="asc", limit=limit)
        assert [d["id"] for d in body["data"]] == ids[:limit]
        assert body["has_more"] is (limit < 5)


def test_default_and_maximum_limit(http: httpx.Client) -> None:
    """Assistants default to 20 per page and accept up to 100."""
    res = _assistants(http)
    ids = res.make(21)
    body = res.page()
    assert [d["id"] for d in body["data"]] == ids[::-1][:20]
    assert body["has_more"] is True
    assert res.ids(after=body["last_id"]) == [ids[0]]
    assert res.ids(limit=100, order="asc") == ids


def test_files_default_limit_covers_everything(http: httpx.Client) -> None:
    res = _files(http)
    ids = res.make(25)
    body = res.page()
    assert [d["id"] for d in body["data"]] == ids[::-1]
    assert body["has_more"] is False


def test_unknown_cursors_give_empty_pages(http: httpx.Client) -> None:
    """A cursor that is not in the listed scope (another thread's message) yields nothing."""
    first, second = _messages(http), _messages(http)
    first_ids, second_ids = first.make(2), second.make(2)
    assert first.ids(after=second_ids[0]) == []
    assert first.ids(before=second_ids[1], order="asc") == []
    assert second.ids(after=first_ids[0], order="asc") == []
    assert first.ids(order="asc") == first_ids


def test_sdk_auto_pager(client: OpenAI) -> None:
    created = [client.beta.assistants.create(model="gpt-4o", name=f"a{i}").id for i in range(5)]
    assert [a.id for a in client.beta.assistants.list(limit=2)] == created[::-1]
    assert [a.id for a in client.beta.assistants.list(limit=2, order="asc")] == created
    pages = list(client.beta.assistants.list(limit=2).iter_pages())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    assert [p.has_more for p in pages] == [True, True, False]

    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"m{i}"} for i in range(5)]
    )
    asc = [m.id for m in client.beta.threads.messages.list(thread.id, limit=2, order="asc")]
    assert len(asc) == len(set(asc)) == 5
    desc = [m.id for m in client.beta.threads.messages.list(thread.id, limit=2)]
    assert desc == asc[::-1]
    texts = [
        m.content[0].text.value
        for m in client.beta.threads.messages.list(thread.id, limit=2, order="asc")
        if m.content[0].type == "text"
    ]
    assert texts == [f"m{i}" for i in range(5)]

    files = [
        client.files.create(file=(f"f{i}.txt", io.BytesIO(b"x")), purpose="assistants").id
        for i in range(5)
    ]
    assert [f.id for f in client.files.list(limit=2)] == files[::-1]
    assert [f.id for f in client.files.list(limit=2, order="asc")] == files


def test_messages_run_id_filter(client: OpenAI, http: httpx.Client) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    body = http.get(f"/threads/{thread.id}/messages", params={"run_id": "run_nomatch"}).json()
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert client.beta.threads.messages.list(thread.id, run_id="run_nomatch").data == []
    assert len(client.beta.threads.messages.list(thread.id).data) == 1


def test_files_purpose_filter(client: OpenAI) -> None:
    def upload(name: str, purpose: Any) -> str:
        return client.files.create(file=(name, io.BytesIO(b"data")), purpose=purpose).id

    a1 = upload("a1.txt", "assistants")
    v1 = upload("v1.png", "vision")
    a2 = upload("a2.txt", "assistants")
    u1 = upload("u1.txt", "user_data")
    a3 = upload("a3.txt", "assistants")

    assert [f.id for f in client.files.list(purpose="assistants")] == [a3, a2, a1]
    assert [f.id for f in client.files.list(purpose="vision")] == [v1]
    assert [f.id for f in client.files.list(purpose="user_data", order="asc")] == [u1]
    assert client.files.list(purpose="batch").data == []
    assert all(f.purpose == "assistants" for f in client.files.list(purpose="assistants"))
    # The filter composes with paging.
    page = client.files.list(purpose="assistants", limit=2, order="asc")
    assert [f.id for f in page.data] == [a1, a2]
    assert page.has_more is True
    rest = client.files.list(purpose="assistants", limit=2, order="asc", after=a2)
    assert [f.id for f in rest.data] == [a3]
    assert rest.has_more is False
    assert [f.id for f in client.files.list(purpose="assistants", limit=1)] == [a3, a2, a1]
    assert len(client.files.list().data) == 5
