"""Assistants end to end: every stored field through create, retrieve, modify and delete."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

ASSISTANT_KEYS = {
    "id",
    "object",
    "created_at",
    "name",
    "description",
    "model",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
}

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}

ALL_TOOLS: list[dict[str, Any]] = [
    {"type": "code_interpreter"},
    {
        "type": "file_search",
        "file_search": {
            "max_num_results": 7,
            "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.25},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": WEATHER_PARAMETERS,
            "strict": True,
        },
    },
]

JSON_SCHEMA_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "description": "The final answer.",
        "schema": {
            "type": "object",
            "properties": {"value": {"type": "integer"}},
            "required": ["value"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def upload(client: OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def test_create_with_every_field(client: OpenAI, http: httpx.Client) -> None:
    vs_existing = client.vector_stores.create(name="vs_existing").id
    file_id = upload(client, "data.csv", b"a,b\n1,2\n")
    before = int(time.time())
    raw = client.beta.assistants.with_raw_response.create(
        model="gpt-4o",
        name="Analyst",
        description="Crunches numbers.",
        instructions="You analyse CSV files.",
        tools=ALL_TOOLS,  # type: ignore[arg-type]
        tool_resources={
            "code_interpreter": {"file_ids": [file_id]},
            "file_search": {"vector_store_ids": [vs_existing]},
        },
        metadata={"team": "data", "tier": "gold"},
        temperature=0.3,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    after = int(time.time())
    assert raw.http_response.status_code == 200
    body = raw.http_response.json()
    assert set(body) == ASSISTANT_KEYS
    assistant = raw.parse()

    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert before <= assistant.created_at <= after
    assert assistant.model == "gpt-4o"
    assert assistant.name == "Analyst"
    assert assistant.description == "Crunches numbers."
    assert assistant.instructions == "You analyse CSV files."
    assert assistant.metadata == {"team": "data", "tier": "gold"}
    assert assistant.temperature == pytest.approx(0.3)
    assert assistant.top_p == pytest.approx(0.9)
    assert assistant.response_format is not None
    assert assistant.response_format != "auto"
    assert assistant.response_format.type == "json_object"

    assert [t.type for t in assistant.tools] == ["code_interpreter", "file_search", "function"]
    fs = assistant.tools[1]
    assert fs.type == "file_search"
    assert fs.file_search is not None
    assert fs.file_search.max_num_results == 7
    assert fs.file_search.ranking_options is not None
    assert fs.file_search.ranking_options.ranker == "default_2024_08_21"
    assert fs.file_search.ranking_options.score_threshold == pytest.approx(0.25)
    fn = assistant.tools[2]
    assert fn.type == "function"
    assert fn.function.name == "get_weather"
    assert fn.function.description == "Current weather of a city."
    assert fn.function.parameters == WEATHER_PARAMETERS
    assert fn.function.strict is True

    assert assistant.tool_resources is not None
    assert assistant.tool_resources.code_interpreter is not None
    assert assistant.tool_resources.code_interpreter.file_ids == [file_id]
    assert assistant.tool_resources.file_search is not None
    assert assistant.tool_resources.file_search.vector_store_ids == [vs_existing]

    # The raw wire form, exactly.
    assert body["object"] == "assistant"
    assert body["tools"] == ALL_TOOLS
    assert body["tool_resources"] == {
        "code_interpreter": {"file_ids": [file_id]},
        "file_search": {"vector_store_ids": [vs_existing]},
    }
    assert body["response_format"] == {"type": "json_object"}

    # Retrieve returns the same object, through the SDK and on the wire.
    assert client.beta.assistants.retrieve(assistant.id) == assistant
    got = http.get(f"/assistants/{assistant.id}")
    assert got.status_code == 200
    assert got.json() == body


def test_minimal_create_has_defaults(client: OpenAI, http: httpx.Client) -> None:
    resp = http.post("/assistants", json={"model": "gpt-4o-mini"})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == ASSISTANT_KEYS
    assert body["id"].startswith("asst_")
    assert isinstance(body["created_at"], int)
    assert {k: v for k, v in body.items() if k not in ("id", "created_at")} == {
        "object": "assistant",
        "name": None,
        "description": None,
        "model": "gpt-4o-mini",
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "response_format": "auto",
    }
    sdk = client.beta.assistants.retrieve(body["id"])
    assert sdk.response_format == "auto"
    assert sdk.tools == []


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ("auto", "auto"),
        ({"type": "text"}, {"type": "text"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        (JSON_SCHEMA_FORMAT, JSON_SCHEMA_FORMAT),
    ],
    ids=["auto", "text", "json_object", "json_schema"],
)
def test_response_format_round_trips(
    client: OpenAI, http: httpx.Client, response_format: Any, expected: Any
) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", response_format=response_format)
    body = http.get(f"/assistants/{assistant.id}").json()
    assert body["response_format"] == expected
    if expected == "auto":
        assert assistant.response_format == "auto"
    else:
        assert assistant.response_format is not None
        assert assistant.response_format != "auto"
        assert assistant.response_format.type == expected["type"]
    if expected == JSON_SCHEMA_FORMAT:
        rf = assistant.response_format
        assert rf.type == "json_schema"  # type: ignore[union-attr]
        js = rf.json_schema  # type: ignore[union-attr]
        assert js.name == "answer"
        assert js.description == "The final answer."
        assert js.schema_ == JSON_SCHEMA_FORMAT["json_schema"]["schema"]
        assert js.strict is True


def test_file_search_tool_defaults(client: OpenAI, http: httpx.Client) -> None:
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}, {"type": "function", "function": {"name": "noop"}}],
    )
    tools = http.get(f"/assistants/{assistant.id}").json()["tools"]
    assert tools[0]["type"] == "file_search"
    ranking = tools[0]["file_search"]["ranking_options"]
    assert ranking["ranker"] in ("auto", "default_2024_08_21")
    assert ranking["score_threshold"] == 0
    assert tools[1] == {"type": "function", "function": {"name": "noop", "strict": False}}


def test_modify(client: OpenAI, http: httpx.Client) -> None:
    vs_keep = client.vector_stores.create(name="vs_keep").id
    first_file = upload(client, "one.txt", b"one")
    second_file = upload(client, "two.txt", b"two")
    created = client.beta.assistants.create(
        model="gpt-4o",
        name="Before",
        description="desc",
        instructions="Be brief.",
        tools=ALL_TOOLS,  # type: ignore[arg-type]
        tool_resources={
            "code_interpreter": {"file_ids": [first_file]},
            "file_search": {"vector_store_ids": [vs_keep]},
        },
        metadata={"a": "1", "b": "2"},
        temperature=0.5,
        top_p=0.5,
        response_format=JSON_SCHEMA_FORMAT,  # type: ignore[arg-type]
    )
    original = http.get(f"/assistants/{created.id}").json()

    # Partial update: only the given field changes.
    updated = client.beta.assistants.update(created.id, description="new desc")
    assert updated.id == created.id
    assert updated.description == "new desc"
    after_partial = http.get(f"/assistants/{created.id}").json()
    assert after_partial == {**original, "description": "new desc"}

    # Explicit null clears the name; everything else stays.
    cleared = client.beta.assistants.update(created.id, name=None)
    assert cleared.name is None
    assert http.get(f"/assistants/{created.id}").json() == {
        **original,
        "description": "new desc",
        "name": None,
    }

    # Metadata is replaced, not merged.
    replaced = client.beta.assistants.update(created.id, metadata={"c": "3"})
    assert replaced.metadata == {"c": "3"}

    # Tools are replaced as a whole.
    new_tools = client.beta.assistants.update(created.id, tools=[{"type": "code_interpreter"}])
    assert [t.type for t in new_tools.tools] == ["code_interpreter"]

    # The code_interpreter file list is replaced; the file_search resources stay.
    resources = client.beta.assistants.update(
        created.id, tool_resources={"code_interpreter": {"file_ids": [second_file]}}
    )
    assert resources.tool_resources is not None
    assert resources.tool_resources.code_interpreter is not None
    assert resources.tool_resources.code_interpreter.file_ids == [second_file]

    # Other scalars update too.
    client.beta.assistants.update(
        created.id,
        model="gpt-4o-mini",
        instructions="Be verbose.",
        temperature=1.5,
        top_p=0.2,
        response_format="auto",
    )

    final = http.get(f"/assistants/{created.id}").json()
    assert set(final) == ASSISTANT_KEYS
    assert final == {
        **original,
        "name": None,
        "description": "new desc",
        "metadata": {"c": "3"},
        "tools": [{"type": "code_interpreter"}],
        "tool_resources": {
            "code_interpreter": {"file_ids": [second_file]},
            "file_search": {"vector_store_ids": [vs_keep]},
        },
        "model": "gpt-4o-mini",
        "instructions": "Be verbose.",
        "temperature": 1.5,
        "top_p": 0.2,
        "response_format": "auto",
    }
    assert final["created_at"] == created.created_at


def test_modify_clears_tool_resource_list(client: OpenAI, http: httpx.Client) -> None:
    file_id = upload(client, "x.txt", b"x")
    created = client.beta.assistants.create(
        model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    client.beta.assistants.update(created.id, tool_resources={"code_interpreter": {"file_ids": []}})
    body = http.get(f"/assistants/{created.id}").json()
    assert body["tool_resources"].get("code_interpreter", {"file_ids": []}) == {"file_ids": []}


def test_delete(client: OpenAI, http: httpx.Client) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", name="Doomed")
    keep = client.beta.assistants.create(model="gpt-4o", name="Survivor")

    resp = http.delete(f"/assistants/{assistant.id}")
    assert resp.status_code == 200
    assert resp.json() == {"id": assistant.id, "object": "assistant.deleted", "deleted": True}

    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(assistant.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(assistant.id)
    assert [a.id for a in client.beta.assistants.list()] == [keep.id]

    deleted = client.beta.assistants.delete(keep.id)
    assert deleted.id == keep.id
    assert deleted.object == "assistant.deleted"
    assert deleted.deleted is True
    assert list(client.beta.assistants.list()) == []
