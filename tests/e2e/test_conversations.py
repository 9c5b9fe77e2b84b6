"""Conversations and their items end to end through the SDK: every item kind we store,
insertion order, cursor pages, metadata, deletion, bad input and project isolation."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import ServerProcess
from tests.e2e.test_errors import sdk_error

CONVERSATION_KEYS = {"id", "object", "created_at", "metadata"}


def user(text: str) -> Any:
    return {"role": "user", "content": text}


def text_of(item: Any) -> str:
    """The text of a message item's first part."""
    text: str = item.content[0].text
    return text


def ident(item: Any) -> str:
    """An item's id (the SDK types some items' ids as optional)."""
    value: str = item.id
    return value


def test_create_with_items_keeps_them_in_order_and_in_wire_shape(
    client: OpenAI, http: httpx.Client
) -> None:
    conv = client.conversations.create(
        metadata={"topic": "weather"},
        items=[
            {"role": "system", "content": "Be brief."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather in Paris?"},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/p.png",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": '{"temp":21}'},
            {"role": "assistant", "content": "21 degrees."},
        ],
    )
    assert conv.id.startswith("conv_")
    assert conv.object == "conversation"
    assert conv.metadata == {"topic": "weather"}
    raw = http.get(f"/conversations/{conv.id}").json()
    assert set(raw) == CONVERSATION_KEYS
    assert raw == {
        "id": conv.id,
        "object": "conversation",
        "created_at": conv.created_at,
        "metadata": {"topic": "weather"},
    }

    items = http.get(f"/conversations/{conv.id}/items", params={"order": "asc"}).json()
    assert items["object"] == "list"
    assert items["has_more"] is False
    data = items["data"]
    assert [i["type"] for i in data] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert [i["id"][: i["id"].index("_") + 1] for i in data] == [
        "msg_",
        "msg_",
        "fc_",
        "fco_",
        "msg_",
    ]
    assert len({i["id"] for i in data}) == 5
    assert items["first_id"] == data[0]["id"]
    assert items["last_id"] == data[-1]["id"]
    assert data[0] == {
        "id": data[0]["id"],
        "type": "message",
        "status": "completed",
        "role": "system",
        "content": [{"type": "input_text", "text": "Be brief."}],
    }
    assert data[1]["content"] == [
        {"type": "input_text", "text": "Weather in Paris?"},
        {"type": "input_image", "image_url": "https://example.com/p.png", "detail": "low"},
    ]
    assert data[2] == {
        "id": data[2]["id"],
        "type": "function_call",
        "status": "completed",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city":"Paris"}',
    }
    assert data[3] == {
        "id": data[3]["id"],
        "type": "function_call_output",
        "status": "completed",
        "call_id": "call_1",
        "output": '{"temp":21}',
    }
    assert data[4]["role"] == "assistant"
    assert data[4]["content"] == [
        {"type": "output_text", "text": "21 degrees.", "annotations": [], "logprobs": []}
    ]

    # The SDK parses every item into its own type; the default order is newest first.
    listed = client.conversations.items.list(conv.id)
    assert [type(i).__name__ for i in listed.data] == [
        "Message",
        "ResponseFunctionToolCallOutputItem",
        "ResponseFunctionToolCallItem",
        "Message",
        "Message",
    ]
    assert [i.id for i in listed.data] == [i["id"] for i in reversed(data)]
    one = client.conversations.items.retrieve(data[2]["id"], conversation_id=conv.id)
    assert one.type == "function_call"
    assert one.name == "weather"


def test_create_without_arguments_update_and_delete(client: OpenAI) -> None:
    conv = client.conversations.create()
    assert conv.metadata == {}
    assert client.conversations.items.list(conv.id).data == []
    updated = client.conversations.update(conv.id, metadata={"a": "1"})
    assert updated.metadata == {"a": "1"}
    assert client.conversations.retrieve(conv.id).metadata == {"a": "1"}
    assert client.conversations.update(conv.id, metadata=None).metadata == {}
    client.conversations.items.create(conv.id, items=[user("hi")])

    deleted = client.conversations.delete(conv.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (conv.id, "conversation.deleted", True)
    for call in (
        lambda: client.conversations.retrieve(conv.id),
        lambda: client.conversations.items.list(conv.id),
        lambda: client.conversations.items.create(conv.id, items=[user("again")]),
        lambda: client.conversations.delete(conv.id),
    ):
        sdk_error(openai.NotFoundError, call, 404, param="conversation_id")


def test_items_append_paginate_retrieve_and_delete(client: OpenAI) -> None:
    conv = client.conversations.create(items=[user(f"m{i}") for i in range(20)])
    added = client.conversations.items.create(
        conv.id,
        items=[user(f"m{i}") for i in range(20, 25)],
        include=["message.input_image.image_url"],
    )
    assert [text_of(i) for i in added.data] == [f"m{i}" for i in range(20, 25)]
    assert added.has_more is False
    assert added.first_id == added.data[0].id

    first = client.conversations.items.list(conv.id)
    assert len(first.data) == 20
    assert first.has_more is True
    texts = [text_of(i) for i in client.conversations.items.list(conv.id, limit=7)]
    assert texts == [f"m{i}" for i in reversed(range(25))]
    ascending = [
        text_of(i) for i in client.conversations.items.list(conv.id, limit=10, order="asc")
    ]
    assert ascending == [f"m{i}" for i in range(25)]
    page = client.conversations.items.list(conv.id, order="asc", after=ident(added.data[1]))
    assert [text_of(i) for i in page.data] == ["m22", "m23", "m24"]

    target = ident(added.data[0])
    after_delete = client.conversations.items.delete(target, conversation_id=conv.id)
    assert after_delete.id == conv.id
    assert after_delete.object == "conversation"
    sdk_error(
        openai.NotFoundError,
        lambda: client.conversations.items.retrieve(target, conversation_id=conv.id),
        404,
        param="item_id",
    )
    sdk_error(
        openai.NotFoundError,
        lambda: client.conversations.items.delete(target, conversation_id=conv.id),
        404,
        param="item_id",
    )
    remaining = [i.id for i in client.conversations.items.list(conv.id, limit=100)]
    assert len(remaining) == 24
    assert target not in remaining


def test_item_of_another_conversation_is_404(client: OpenAI) -> None:
    a = client.conversations.create(items=[user("in a")])
    b = client.conversations.create()
    item = ident(client.conversations.items.list(a.id).data[0])
    sdk_error(
        openai.NotFoundError,
        lambda: client.conversations.items.retrieve(item, conversation_id=b.id),
        404,
        param="item_id",
    )


def test_item_reference_copies_an_item(client: OpenAI) -> None:
    a = client.conversations.create(
        items=[{"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"}]
    )
    source = client.conversations.items.list(a.id).data[0]
    reference: Any = {"type": "item_reference", "id": source.id}
    b = client.conversations.create(items=[reference])
    (copy,) = client.conversations.items.list(b.id).data
    assert copy.id != source.id
    assert ident(copy).startswith("fc_")
    assert copy.model_dump(exclude={"id"}) == source.model_dump(exclude={"id"})


def test_input_file_and_function_output_parts_name_project_files(client: OpenAI) -> None:
    uploaded = client.files.create(file=("notes.txt", io.BytesIO(b"notes")), purpose="user_data")
    conv = client.conversations.create(
        items=[
            {"role": "user", "content": [{"type": "input_file", "file_id": uploaded.id}]},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "done"}],
            },
        ]
    )
    first, second = client.conversations.items.list(conv.id, order="asc").data
    assert first.content == [  # type: ignore[union-attr]
        openai.types.responses.ResponseInputFile(type="input_file", file_id=uploaded.id)
    ]
    assert second.output[0].text == "done"  # type: ignore[union-attr,index]


# (items, param, code): each answered 400 with the envelope, and nothing stored.
BAD_ITEMS: dict[str, tuple[list[Any], str, str]] = {
    "unknown item type": (
        [{"type": "web_search_call", "id": "ws_1", "status": "completed"}],
        "items[0].type",
        "invalid_value",
    ),
    "no type and no role": ([{"content": "x"}], "items[0].type", "missing_required_parameter"),
    "bad role": ([{"role": "robot", "content": "x"}], "items[0].role", "invalid_value"),
    "assistant with input_text": (
        [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}],
        "items[0].content[0].type",
        "invalid_value",
    ),
    "user with output_text": (
        [user("ok"), {"role": "user", "content": [{"type": "output_text", "text": "x"}]}],
        "items[1].content[0].type",
        "invalid_value",
    ),
    "unknown content part": (
        [{"role": "user", "content": [{"type": "input_audio", "data": "x"}]}],
        "items[0].content[0].type",
        "invalid_value",
    ),
    "empty content list": (
        [{"role": "user", "content": []}],
        "items[0].content",
        "array_below_min_length",
    ),
    "function_call without call_id": (
        [{"type": "function_call", "name": "f", "arguments": "{}"}],
        "items[0].call_id",
        "missing_required_parameter",
    ),
    "output with a number": (
        [{"type": "function_call_output", "call_id": "c", "output": 5}],
        "items[0].output",
        "invalid_type",
    ),
    "image without source": (
        [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}],
        "items[0].content[0]",
        "invalid_value",
    ),
    "image of an unknown file": (
        [{"role": "user", "content": [{"type": "input_image", "file_id": "file-nope"}]}],
        "items[0].content[0].file_id",
        "invalid_value",
    ),
    "unknown item reference": (
        [{"type": "item_reference", "id": "msg_nope"}],
        "items[0].id",
        "invalid_value",
    ),
    "unknown field": (
        [{"role": "user", "content": "x", "colour": "red"}],
        "items[0].colour",
        "unknown_parameter",
    ),
    "21 items": ([user(str(i)) for i in range(21)], "items", "array_above_max_length"),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_bad_items_are_400(client: OpenAI, case: str) -> None:
    items, param, code = BAD_ITEMS[case]
    conv = client.conversations.create()
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.items.create(conv.id, items=items),
        400,
        param=param,
        code=code,
    )
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.create(items=items),
        400,
        param=param,
        code=code,
    )
    assert client.conversations.items.list(conv.id).data == []


def test_other_bad_requests_are_400(client: OpenAI, http: httpx.Client) -> None:
    conv = client.conversations.create()
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.items.create(conv.id, items=[]),
        400,
        param="items",
        code="array_below_min_length",
    )
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.items.list(conv.id, include=["bogus"]),  # type: ignore[list-item]
        400,
        param="include",
        code="invalid_value",
    )
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.create(metadata={f"k{i}": "v" for i in range(17)}),
        400,
        param="metadata",
    )
    sdk_error(
        openai.BadRequestError,
        lambda: client.conversations.items.list(conv.id, limit=101),
        400,
        param="limit",
    )
    missing = http.post(f"/conversations/{conv.id}", json={})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "metadata"
    not_json = http.post(
        "/conversations", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


def test_another_projects_conversation_is_unknown(client: OpenAI, other_client: OpenAI) -> None:
    conv = client.conversations.create(items=[user("A's secret")], metadata={"owner": "a"})
    item = ident(client.conversations.items.list(conv.id).data[0])
    uploaded = client.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="user_data")
    calls: dict[str, Callable[[str], object]] = {
        "retrieve": lambda cid: other_client.conversations.retrieve(cid),
        "update": lambda cid: other_client.conversations.update(cid, metadata={"owner": "b"}),
        "list items": lambda cid: other_client.conversations.items.list(cid),
        "add items": lambda cid: other_client.conversations.items.create(cid, items=[user("b")]),
        "retrieve item": lambda cid: other_client.conversations.items.retrieve(
            item, conversation_id=cid
        ),
        "delete item": lambda cid: other_client.conversations.items.delete(
            item, conversation_id=cid
        ),
        "delete": lambda cid: other_client.conversations.delete(cid),
    }
    unknown = "conv_" + "z" * (len(conv.id) - 5)
    for name, call in calls.items():
        theirs = sdk_error(
            openai.NotFoundError, functools.partial(call, conv.id), 404, param="conversation_id"
        )
        missing = sdk_error(
            openai.NotFoundError, functools.partial(call, unknown), 404, param="conversation_id"
        )
        assert theirs.body == {
            **missing.body,  # type: ignore[dict-item]
            "message": missing.body["message"].replace(unknown, conv.id),  # type: ignore[index]
        }, name
    # B cannot reach A's objects by reference either.
    mine = other_client.conversations.create()
    sdk_error(
        openai.BadRequestError,
        lambda: other_client.conversations.items.create(
            mine.id, items=[{"type": "item_reference", "id": item}]
        ),
        400,
        param="items[0].id",
    )
    sdk_error(
        openai.BadRequestError,
        lambda: other_client.conversations.items.create(
            mine.id,
            items=[{"role": "user", "content": [{"type": "input_file", "file_id": uploaded.id}]}],
        ),
        400,
        param="items[0].content[0].file_id",
    )
    # A's conversation is untouched.
    assert client.conversations.retrieve(conv.id).metadata == {"owner": "a"}
    assert [i.id for i in client.conversations.items.list(conv.id)] == [item]


def test_azure_v1_shape_serves_conversations(
    server: ServerProcess, api_key: str, client: OpenAI
) -> None:
    with OpenAI(base_url=server.base_url + "/openai/v1", api_key=api_key, max_retries=0) as azure:
        conv = azure.conversations.create(items=[user("via azure")])
        assert [i.id for i in azure.conversations.items.list(conv.id)] == [
            i.id for i in client.conversations.items.list(conv.id)
        ]
    assert client.conversations.retrieve(conv.id).id == conv.id
