"""Every error of the object API: status, the full OpenAI envelope, the right ``param``.

Each error body must be exactly ``{"error": {"message", "type", "param", "code"}}`` and carry
an ``x-request-id`` header; no error case may end in a 500 (the server log is checked after
every test for an unhandled traceback).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import TEST_MAX_UPLOAD_BYTES, ServerProcess

E = TypeVar("E", bound=openai.APIStatusError)

ENVELOPE_KEYS = {"message", "type", "param", "code"}


class HasResponse(Protocol):
    """What an ``httpx`` or ``httpx2`` response offers that the checks read."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


_ANY = object()


def check_envelope(
    response: HasResponse,
    status: int,
    *,
    param: str | None,
    code: object = _ANY,
    message: str | None = None,
    type_: str = "invalid_request_error",
) -> dict[str, Any]:
    """Assert the status, the exact envelope shape and its fields; return the inner error."""
    assert response.status_code == status, response.json()
    assert response.headers.get("x-request-id", "").startswith("req_")
    assert response.headers.get("content-type", "").startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict)
    assert set(err) == ENVELOPE_KEYS, err
    assert isinstance(err["message"], str)
    assert err["message"]
    assert err["type"] == type_
    assert err["param"] == param, err
    if code is not _ANY:
        assert err["code"] == code, err
    if message is not None:
        assert err["message"] == message
    return err


def sdk_error(
    exc_type: type[E],
    call: Callable[[], object],
    status: int,
    *,
    param: str | None,
    code: object = _ANY,
    message: str | None = None,
) -> E:
    """Run an SDK call that must fail with ``exc_type``; check the envelope it carried."""
    with pytest.raises(exc_type) as info:
        call()
    exc = info.value
    assert exc.status_code == status
    err = check_envelope(exc.response, status, param=param, code=code, message=message)
    # The SDK unwraps the envelope into .body and exposes .param/.code from it.
    assert exc.body == err
    assert exc.param == param
    assert exc.code == err["code"]
    assert exc.request_id == exc.response.headers["x-request-id"]
    return exc


@pytest.fixture(autouse=True)
def no_unhandled_errors(server: ServerProcess) -> Iterator[None]:
    """Fail the test if the server logged an unhandled exception while it ran."""
    before = len(server.log())
    yield
    new = server.log()[before:]
    assert "Traceback" not in new, new
    assert "unhandled error" not in new, new


def unknown(prefix: str) -> str:
    """A well-formed id that names nothing."""
    return prefix + "unknown0000000000000000000"


# ---- 404 for unknown ids -------------------------------------------------------------------


@dataclass
class Refs:
    """Existing objects the 404 cases can point next to."""

    thread_id: str


@pytest.fixture
def refs(client: OpenAI) -> Refs:
    """A real thread (with one message) of the caller's project."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    return Refs(thread_id=thread.id)


ASST, THREAD, MSG, FILE = unknown("asst_"), unknown("thread_"), unknown("msg_"), unknown("file-")

# The id each kind of object is looked up with, and the param naming it.
MISSING = {
    "assistant": (ASST, "assistant_id"),
    "thread": (THREAD, "thread_id"),
    "message": (MSG, "message_id"),
    "file": (FILE, "file_id"),
}

# case -> (kind of object reported missing, the call)
NOT_FOUND: dict[str, tuple[str, Callable[[OpenAI, Refs], object]]] = {
    "assistant-retrieve": ("assistant", lambda c, r: c.beta.assistants.retrieve(ASST)),
    "assistant-modify": ("assistant", lambda c, r: c.beta.assistants.update(ASST, name="x")),
    "assistant-delete": ("assistant", lambda c, r: c.beta.assistants.delete(ASST)),
    "thread-retrieve": ("thread", lambda c, r: c.beta.threads.retrieve(THREAD)),
    "thread-modify": ("thread", lambda c, r: c.beta.threads.update(THREAD, metadata={"a": "b"})),
    "thread-delete": ("thread", lambda c, r: c.beta.threads.delete(THREAD)),
    "message-create-unknown-thread": (
        "thread",
        lambda c, r: c.beta.threads.messages.create(THREAD, role="user", content="hi"),
    ),
    "message-list-unknown-thread": ("thread", lambda c, r: c.beta.threads.messages.list(THREAD)),
    "message-retrieve-unknown-thread": (
        "thread",
        lambda c, r: c.beta.threads.messages.retrieve(MSG, thread_id=THREAD),
    ),
    "message-modify-unknown-thread": (
        "thread",
        lambda c, r: c.beta.threads.messages.update(MSG, thread_id=THREAD, metadata={"a": "b"}),
    ),
    "message-delete-unknown-thread": (
        "thread",
        lambda c, r: c.beta.threads.messages.delete(MSG, thread_id=THREAD),
    ),
    "message-retrieve-unknown-message": (
        "message",
        lambda c, r: c.beta.threads.messages.retrieve(MSG, thread_id=r.thread_id),
    ),
    "message-modify-unknown-message": (
        "message",
        lambda c, r: c.beta.threads.messages.update(MSG, thread_id=r.thread_id, metadata={}),
    ),
    "message-delete-unknown-message": (
        "message",
        lambda c, r: c.beta.threads.messages.delete(MSG, thread_id=r.thread_id),
    ),
    "file-retrieve": ("file", lambda c, r: c.files.retrieve(FILE)),
    "file-delete": ("file", lambda c, r: c.files.delete(FILE)),
    "file-content": ("file", lambda c, r: c.files.content(FILE)),
}


@pytest.mark.parametrize("case", list(NOT_FOUND))
def test_unknown_id_is_404(client: OpenAI, refs: Refs, case: str) -> None:
    kind, call = NOT_FOUND[case]
    object_id, param = MISSING[kind]
    sdk_error(
        openai.NotFoundError,
        lambda: call(client, refs),
        404,
        param=param,
        code=None,
        message=f"No {kind} found with id '{object_id}'.",
    )


def test_message_of_another_thread_is_404(client: OpenAI) -> None:
    """A message id is only found under its own thread."""
    first = client.beta.threads.create(messages=[{"role": "user", "content": "one"}])
    second = client.beta.threads.create()
    (msg,) = client.beta.threads.messages.list(first.id).data
    sdk_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.retrieve(msg.id, thread_id=second.id),
        404,
        param="message_id",
        message=f"No message found with id '{msg.id}'.",
    )
    sdk_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.delete(msg.id, thread_id=second.id),
        404,
        param="message_id",
    )
    assert client.beta.threads.messages.retrieve(msg.id, thread_id=first.id).id == msg.id


def test_deleted_objects_are_404(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    (msg,) = client.beta.threads.messages.list(thread.id).data
    assert client.beta.threads.messages.delete(msg.id, thread_id=thread.id).deleted
    sdk_error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.delete(msg.id, thread_id=thread.id),
        404,
        param="message_id",
    )
    assert client.beta.assistants.delete(assistant.id).deleted
    sdk_error(
        openai.NotFoundError,
        lambda: client.beta.assistants.delete(assistant.id),
        404,
        param="assistant_id",
        message=f"No assistant found with id '{assistant.id}'.",
    )
    assert client.beta.threads.delete(thread.id).deleted
    sdk_error(
        openai.NotFoundError,
        lambda: client.beta.threads.update(thread.id, metadata={}),
        404,
        param="thread_id",
    )


# ---- 400 validation ------------------------------------------------------------------------

NAME_257 = "n" * 257
FUNCTION = {"type": "function", "function": {"name": "ok_name"}}

# (assistant create kwargs, param, code)
ASSISTANT_INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "model-int": ({"model": 5}, "model", "invalid_type"),
    "model-null": ({"model": None}, "model", "invalid_type"),
    "name-too-long": ({"model": "m", "name": NAME_257}, "name", "string_above_max_length"),
    "description-too-long": (
        {"model": "m", "description": "d" * 513},
        "description",
        "string_above_max_length",
    ),
    "too-many-tools": (
        {"model": "m", "tools": [FUNCTION] * 129},
        "tools",
        "array_above_max_length",
    ),
    "tools-not-a-list": ({"model": "m", "tools": "code_interpreter"}, "tools", "invalid_type"),
    "bad-tool-type": (
        {"model": "m", "tools": [{"type": "bogus"}]},
        "tools[0].type",
        "invalid_value",
    ),
    "second-tool-bad-type": (
        {"model": "m", "tools": [{"type": "code_interpreter"}, {"type": "retrieval"}]},
        "tools[1].type",
        "invalid_value",
    ),
    "tool-without-type": (
        {"model": "m", "tools": [{}]},
        "tools[0].type",
        "missing_required_parameter",
    ),
    "bad-function-name": (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "has space"}}]},
        "tools[0].function.name",
        "invalid_value",
    ),
    "function-name-too-long": (
        {"model": "m", "tools": [{"type": "function", "function": {"name": "f" * 65}}]},
        "tools[0].function.name",
        "invalid_value",
    ),
    "function-without-name": (
        {"model": "m", "tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
        "missing_required_parameter",
    ),
    "temperature-high": (
        {"model": "m", "temperature": 3},
        "temperature",
        "integer_above_max_value",
    ),
    "temperature-high-float": (
        {"model": "m", "temperature": 2.5},
        "temperature",
        "decimal_above_max_value",
    ),
    "top-p-negative": ({"model": "m", "top_p": -1}, "top_p", "integer_below_min_value"),
    "top-p-high-float": ({"model": "m", "top_p": 1.5}, "top_p", "decimal_above_max_value"),
    "bad-reasoning-effort": (
        {"model": "m", "reasoning_effort": "huge"},
        "reasoning_effort",
        "invalid_value",
    ),
    "metadata-not-object": ({"model": "m", "metadata": ["a"]}, "metadata", "invalid_type"),
}


@pytest.mark.parametrize("case", list(ASSISTANT_INVALID))
def test_assistant_create_validation(client: OpenAI, case: str) -> None:
    kwargs, param, code = ASSISTANT_INVALID[case]
    create = cast(Callable[..., object], client.beta.assistants.create)
    sdk_error(openai.BadRequestError, lambda: create(**kwargs), 400, param=param, code=code)
    # Nothing was created by the failed request.
    assert client.beta.assistants.list().data == []


def test_assistant_modify_validation(client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", name="kept")
    update = cast(Callable[..., object], client.beta.assistants.update)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": NAME_257}, "name"),
        ({"tools": [{"type": "bogus"}]}, "tools[0].type"),
        ({"temperature": 3}, "temperature"),
        ({"model": 5}, "model"),
    ]
    for kwargs, param in cases:
        sdk_error(openai.BadRequestError, partial(update, assistant.id, **kwargs), 400, param=param)
    # The failed modifications changed nothing.
    kept = client.beta.assistants.retrieve(assistant.id)
    assert (kept.name, kept.model, kept.tools, kept.temperature) == ("kept", "gpt-4o", [], 1.0)


def test_missing_model_is_named(http: httpx.Client) -> None:
    err = check_envelope(
        http.post("/assistants", json={"name": "no model"}),
        400,
        param="model",
        code="missing_required_parameter",
    )
    assert err["message"] == "Missing required parameter: 'model'."


def test_empty_json_body_on_assistant_create_reports_model(http: httpx.Client) -> None:
    response = http.post("/assistants", content=b"", headers={"Content-Type": "application/json"})
    check_envelope(
        response,
        400,
        param="model",
        code="missing_required_parameter",
        message="Missing required parameter: 'model'.",
    )
    response = http.post("/assistants", json={})
    check_envelope(response, 400, param="model", code="missing_required_parameter")


# (message create kwargs, param, code)
MESSAGE_INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "role-system": ({"role": "system", "content": "hi"}, "role", "invalid_value"),
    "role-missing": ({"content": "hi"}, "role", "missing_required_parameter"),
    "content-missing": ({"role": "user"}, "content", "missing_required_parameter"),
    "content-empty-list": ({"role": "user", "content": []}, "content", "array_below_min_length"),
    "content-int": ({"role": "user", "content": 5}, "content", "invalid_type"),
    "content-part-bad-type": (
        {"role": "user", "content": [{"type": "audio", "audio": "x"}]},
        "content[0].type",
        "invalid_value",
    ),
    "content-text-not-string": (
        {"role": "user", "content": [{"type": "text", "text": {"value": "x"}}]},
        "content[0].text",
        "invalid_type",
    ),
    "image-url-bad-scheme": (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
        "content[0].image_url.url",
        "invalid_value",
    ),
    "image-detail-bad": (
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "max"}}
            ],
        },
        "content[0].image_url.detail",
        "invalid_value",
    ),
    "attachment-tool-bad": (
        {
            "role": "user",
            "content": "x",
            "attachments": [{"file_id": "file-x", "tools": [{"type": "function"}]}],
        },
        "attachments[0].tools[0].type",
        "invalid_value",
    ),
}


@pytest.mark.parametrize("case", list(MESSAGE_INVALID))
def test_message_create_validation(http: httpx.Client, case: str) -> None:
    body, param, code = MESSAGE_INVALID[case]
    thread_id = http.post("/threads", json={}).json()["id"]
    check_envelope(
        http.post(f"/threads/{thread_id}/messages", json=body), 400, param=param, code=code
    )
    assert http.get(f"/threads/{thread_id}/messages").json()["data"] == []


def test_message_validation_through_the_sdk(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    create = cast(Callable[..., object], client.beta.threads.messages.create)
    sdk_error(
        openai.BadRequestError,
        lambda: create(thread.id, role="system", content="hi"),
        400,
        param="role",
        code="invalid_value",
    )
    sdk_error(
        openai.BadRequestError,
        lambda: create(thread.id, role="user", content=[]),
        400,
        param="content",
        code="array_below_min_length",
    )


def test_thread_create_message_errors_name_the_message(http: httpx.Client) -> None:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "ok"}, {"role": "system", "content": "x"}]
    }
    check_envelope(http.post("/threads", json=body), 400, param="messages[1].role")
    body = {"messages": [{"role": "user", "content": []}]}
    check_envelope(http.post("/threads", json=body), 400, param="messages[0].content")


def test_unknown_purpose_on_upload(client: OpenAI) -> None:
    create = cast(Callable[..., object], client.files.create)
    err = sdk_error(
        openai.BadRequestError,
        lambda: create(file=("a.txt", io.BytesIO(b"a")), purpose="bogus"),
        400,
        param="purpose",
        code="invalid_value",
    )
    assert "bogus" in err.message
    assert client.files.list().data == []


def test_upload_without_file_or_purpose(http: httpx.Client) -> None:
    check_envelope(
        http.post("/files", data={"purpose": "assistants"}, files={"other": ("a", b"a")}),
        400,
        param="file",
        code="missing_required_parameter",
    )
    check_envelope(
        http.post("/files", files={"file": ("a.txt", b"a")}),
        400,
        param="purpose",
        code="missing_required_parameter",
    )
    check_envelope(
        http.post("/files", json={"purpose": "assistants"}),
        400,
        param="file",
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"order": "sideways"}, "order"),
    ],
)
@pytest.mark.parametrize("resource", ["assistants", "messages"])
def test_list_parameter_validation(
    client: OpenAI, resource: str, query: dict[str, Any], param: str
) -> None:
    lists: dict[str, Callable[..., object]] = {
        "assistants": client.beta.assistants.list,
        "messages": lambda **kw: client.beta.threads.messages.list(thread_id, **kw),
    }
    thread_id = client.beta.threads.create().id if resource == "messages" else ""
    sdk_error(openai.BadRequestError, lambda: lists[resource](**query), 400, param=param)


@pytest.mark.parametrize(
    ("query", "param"),
    [({"limit": 0}, "limit"), ({"limit": 10001}, "limit"), ({"order": "sideways"}, "order")],
)
def test_file_list_parameter_validation(client: OpenAI, query: dict[str, Any], param: str) -> None:
    files_list = cast(Callable[..., object], client.files.list)
    sdk_error(openai.BadRequestError, lambda: files_list(**query), 400, param=param)


# ---- metadata ------------------------------------------------------------------------------

MetadataCall = Callable[[httpx.Client, Any], httpx.Response]


def _assistant_create(http: httpx.Client, md: Any) -> httpx.Response:
    return http.post("/assistants", json={"model": "gpt-4o", "metadata": md})


def _assistant_modify(http: httpx.Client, md: Any) -> httpx.Response:
    asst = http.post("/assistants", json={"model": "gpt-4o"}).json()["id"]
    return http.post(f"/assistants/{asst}", json={"metadata": md})


def _thread_create(http: httpx.Client, md: Any) -> httpx.Response:
    return http.post("/threads", json={"metadata": md})


def _thread_modify(http: httpx.Client, md: Any) -> httpx.Response:
    thread = http.post("/threads", json={}).json()["id"]
    return http.post(f"/threads/{thread}", json={"metadata": md})


def _message_create(http: httpx.Client, md: Any) -> httpx.Response:
    thread = http.post("/threads", json={}).json()["id"]
    return http.post(
        f"/threads/{thread}/messages", json={"role": "user", "content": "x", "metadata": md}
    )


def _message_modify(http: httpx.Client, md: Any) -> httpx.Response:
    thread = http.post("/threads", json={}).json()["id"]
    msg = http.post(f"/threads/{thread}/messages", json={"role": "user", "content": "x"})
    return http.post(f"/threads/{thread}/messages/{msg.json()['id']}", json={"metadata": md})


def _thread_message_create(http: httpx.Client, md: Any) -> httpx.Response:
    return http.post(
        "/threads", json={"messages": [{"role": "user", "content": "x", "metadata": md}]}
    )


METADATA_CALLS: dict[str, tuple[MetadataCall, str]] = {
    "assistant-create": (_assistant_create, "metadata"),
    "assistant-modify": (_assistant_modify, "metadata"),
    "thread-create": (_thread_create, "metadata"),
    "thread-modify": (_thread_modify, "metadata"),
    "message-create": (_message_create, "metadata"),
    "message-modify": (_message_modify, "metadata"),
    "thread-create-message": (_thread_message_create, "messages[0].metadata"),
}


@pytest.mark.parametrize("target", list(METADATA_CALLS))
def test_metadata_limits(http: httpx.Client, target: str) -> None:
    call, param = METADATA_CALLS[target]

    err = check_envelope(
        call(http, {f"k{i}": "v" for i in range(17)}),
        400,
        param=param,
        code="object_above_max_properties",
    )
    assert "17" in err["message"]
    assert "16" in err["message"]

    long_key = "k" * 65
    err = check_envelope(
        call(http, {long_key: "v"}),
        400,
        param=f"{param}.{long_key}",
        code="string_above_max_length",
    )
    assert "64" in err["message"]

    err = check_envelope(
        call(http, {"k": "v" * 513}),
        400,
        param=f"{param}.k",
        code="string_above_max_length",
    )
    assert "512" in err["message"]
    assert "513" in err["message"]

    check_envelope(call(http, {"k": 5}), 400, param=f"{param}.k", code="invalid_type")
    check_envelope(call(http, {"k": None}), 400, param=f"{param}.k", code="invalid_type")
    check_envelope(call(http, "k=v"), 400, param=param, code="invalid_type")

    at_limit = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    ok = call(http, at_limit)
    assert ok.status_code == 200, ok.json()
    obj = ok.json()
    stored = obj.get("metadata")
    if target == "thread-create-message":
        listed = http.get(f"/threads/{obj['id']}/messages").json()["data"]
        stored = listed[0]["metadata"]
    assert stored == at_limit


def test_metadata_null_clears(client: OpenAI, http: httpx.Client) -> None:
    """``metadata: null`` is accepted and reads back as ``{}``."""
    asst = client.beta.assistants.create(model="m", metadata={"a": "b"})
    response = http.post(f"/assistants/{asst.id}", json={"metadata": None})
    assert response.status_code == 200
    assert response.json()["metadata"] == {}


# ---- malformed bodies ----------------------------------------------------------------------


BIG = b" " * (300 * 1024)  # past web.routing's inline limit: parsed in a worker thread


@pytest.mark.parametrize("path", ["/assistants", "/threads"])
@pytest.mark.parametrize(
    "content",
    [
        b'{"model": ',
        b"[]",
        b'[{"model": "gpt-4o"}]',
        b'"model"',
        b"5",
        b"null",
        b"\xff\xfe",
        b'{"model": ' + BIG,
        BIG + b"[]",
    ],
    ids=[
        "truncated",
        "empty-array",
        "array",
        "string",
        "number",
        "null",
        "not-utf8",
        "large-truncated",
        "large-array",
    ],
)
def test_malformed_json_body(http: httpx.Client, path: str, content: bytes) -> None:
    response = http.post(path, content=content, headers={"Content-Type": "application/json"})
    err = check_envelope(response, 400, param=None, code=None)
    assert "JSON" in err["message"]


def test_empty_json_body_on_delete_and_thread_create(client: OpenAI, http: httpx.Client) -> None:
    json_ct = {"Content-Type": "application/json"}
    asst = client.beta.assistants.create(model="gpt-4o")
    response = http.request("DELETE", f"/assistants/{asst.id}", content=b"", headers=json_ct)
    assert response.status_code == 200
    assert response.json() == {"id": asst.id, "object": "assistant.deleted", "deleted": True}

    response = http.post("/threads", content=b"", headers=json_ct)
    assert response.status_code == 200
    thread = response.json()
    assert thread["object"] == "thread"
    assert thread["metadata"] == {}

    response = http.request("DELETE", f"/threads/{thread['id']}", content=b"", headers=json_ct)
    assert response.status_code == 200
    assert response.json()["deleted"] is True

    # Older 1.x SDKs also send the JSON content type on GETs.
    response = http.request("GET", "/assistants", content=b"", headers=json_ct)
    assert response.status_code == 200
    assert response.json()["data"] == []

    up = client.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="assistants")
    response = http.request("DELETE", f"/files/{up.id}", content=b"", headers=json_ct)
    assert response.status_code == 200
    assert response.json() == {"id": up.id, "object": "file", "deleted": True}


# ---- upload size ---------------------------------------------------------------------------


def _stored_files(server: ServerProcess) -> set[Path]:
    root = server.log_path.parent / "files"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_oversized_upload_is_413_and_leaves_nothing(client: OpenAI, server: ServerProcess) -> None:
    before = _stored_files(server)
    exc = sdk_error(
        openai.APIStatusError,
        lambda: client.files.create(
            file=("big.bin", io.BytesIO(b"x" * (TEST_MAX_UPLOAD_BYTES + 1))), purpose="assistants"
        ),
        413,
        param="file",
        code="file_too_large",
    )
    assert str(TEST_MAX_UPLOAD_BYTES) in exc.message
    assert client.files.list().data == []
    after = _stored_files(server)
    assert after <= before, after - before  # no bytes, no temp file left behind
    assert not [p for p in after if p.name.endswith(".tmp")]


def test_far_oversized_upload_is_refused_early(http: httpx.Client, server: ServerProcess) -> None:
    """A declared length far over the limit is refused from the header alone."""
    before = _stored_files(server)
    response = http.post(
        "/files",
        data={"purpose": "assistants"},
        files={"file": ("huge.bin", b"y" * (TEST_MAX_UPLOAD_BYTES + 256 * 1024))},
    )
    check_envelope(response, 413, param="file", code="file_too_large")
    assert http.get("/files").json()["data"] == []
    assert _stored_files(server) <= before


def test_upload_of_exactly_the_limit_succeeds(client: OpenAI) -> None:
    data = bytes(range(256)) * (TEST_MAX_UPLOAD_BYTES // 256)
    assert len(data) == TEST_MAX_UPLOAD_BYTES
    up = client.files.create(file=("limit.bin", io.BytesIO(data)), purpose="assistants")
    assert up.bytes == TEST_MAX_UPLOAD_BYTES
    assert [f.id for f in client.files.list().data] == [up.id]
    assert client.files.content(up.id).content == data


# ---- auth, routes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer sk-assistd-wrong-key-000000000000"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
        ({"Authorization": "Bearer"}, "missing_api_key"),
        ({"Authorization": "Token sk-assistd-x"}, "missing_api_key"),
    ],
    ids=["none", "wrong-key", "basic", "bare-scheme", "token-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/assistants"), ("POST", "/threads"), ("GET", "/files"), ("DELETE", "/files/x")],
)
def test_authentication_errors(
    server: ServerProcess, headers: dict[str, str], code: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=server.api, timeout=30) as anon:
        response = anon.request(
            method, path, headers=headers, json={} if method == "POST" else None
        )
    check_envelope(response, 401, param=None, code=code)


def test_wrong_key_through_the_sdk(server: ServerProcess, api_key: str) -> None:
    bad = OpenAI(base_url=server.api, api_key=api_key + "x", max_retries=0)
    exc = sdk_error(
        openai.AuthenticationError,
        lambda: bad.beta.assistants.list(),
        401,
        param=None,
        code="invalid_api_key",
    )
    # The key itself is never echoed in full.
    assert api_key not in exc.message


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_route_is_404(http: httpx.Client, method: str) -> None:
    response = http.request(method, "/nope")
    check_envelope(response, 404, param=None, code=None, message=f"Invalid URL ({method} /v1/nope)")


def test_wrong_method_is_an_envelope(http: httpx.Client) -> None:
    response = http.request("PATCH", "/assistants")
    err = check_envelope(response, 405, param=None, code=None)
    assert "/v1/assistants" in err["message"]


# ---- referenced files that do not exist ----------------------------------------------------


def test_missing_file_references(client: OpenAI) -> None:
    real = client.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="assistants")
    thread = client.beta.threads.create()
    missing = unknown("file-")

    def check(call: Callable[[], object], param: str) -> None:
        sdk_error(
            openai.BadRequestError,
            call,
            400,
            param=param,
            code="invalid_value",
            message=f"No file found with id '{missing}'.",
        )

    check(
        lambda: client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[
                {"file_id": real.id, "tools": [{"type": "code_interpreter"}]},
                {"file_id": missing, "tools": [{"type": "file_search"}]},
            ],
        ),
        "attachments[1].file_id",
    )
    check(
        lambda: client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[
                {"type": "text", "text": "look"},
                {"type": "image_file", "image_file": {"file_id": missing}},
            ],
        ),
        "content[1].image_file.file_id",
    )
    check(
        lambda: client.beta.assistants.create(
            model="gpt-4o",
            tool_resources={"code_interpreter": {"file_ids": [real.id, missing]}},
        ),
        "tool_resources.code_interpreter.file_ids[1]",
    )
    check(
        lambda: client.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": [missing]}}
        ),
        "tool_resources.code_interpreter.file_ids[0]",
    )
    check(
        lambda: client.beta.threads.create(
            messages=[
                {"role": "user", "content": "fine"},
                {"role": "user", "content": "x", "attachments": [{"file_id": missing}]},
            ]
        ),
        "messages[1].attachments[0].file_id",
    )
    assistant = client.beta.assistants.create(model="gpt-4o")
    check(
        lambda: client.beta.assistants.update(
            assistant.id, tool_resources={"code_interpreter": {"file_ids": [missing]}}
        ),
        "tool_resources.code_interpreter.file_ids[0]",
    )
    check(
        lambda: client.beta.threads.update(
            thread.id, tool_resources={"code_interpreter": {"file_ids": [missing]}}
        ),
        "tool_resources.code_interpreter.file_ids[0]",
    )

    # None of the failed requests left anything behind.
    assert [a.id for a in client.beta.assistants.list().data] == [assistant.id]
    resources = client.beta.assistants.retrieve(assistant.id).tool_resources
    assert resources is None or resources.code_interpreter is None
    assert client.beta.threads.messages.list(thread.id).data == []
    # A deleted file is missing too.
    assert client.files.delete(real.id).deleted
    sdk_error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.create(
            thread.id, role="user", content="x", attachments=[{"file_id": real.id}]
        ),
        400,
        param="attachments[0].file_id",
    )


# ---- strings the database cannot store ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/assistants/asst_%00x", None),
        ("POST", "/threads/thread_%00x/messages", {"role": "user", "content": "x"}),
        ("GET", "/files/file-%00x/content", None),
        ("GET", "/assistants?after=asst_%00x", None),
        ("GET", "/files?purpose=assistants%00", None),
        ("POST", "/assistants", {"model": "gpt-4o\u0000"}),
        ("POST", "/assistants", {"model": "m", "metadata": {"k": "a\u0000b"}}),
        ("POST", "/threads", {"messages": [{"role": "user", "content": "a\u0000b"}]}),
    ],
    ids=[
        "path-id",
        "path-thread",
        "path-file",
        "query-cursor",
        "query-purpose",
        "text-column",
        "jsonb-metadata",
        "jsonb-content",
    ],
)
def test_nul_characters_are_400_not_500(
    http: httpx.Client, method: str, path: str, body: Any
) -> None:
    response = http.request(method, path, json=body)
    err = check_envelope(response, 400, param=None, code="invalid_value")
    assert "NUL" in err["message"]
    # The connection is still usable (a 500 closes it) and nothing was stored.
    assert http.get("/assistants").json()["data"] == []


@pytest.mark.parametrize("field", ["model", "name", "instructions"])
def test_lone_surrogate_is_400_not_500(http: httpx.Client, field: str) -> None:
    body = b'{"model": "m", "%s": "\\ud800"}' % field.encode()
    response = http.post("/assistants", content=body, headers={"Content-Type": "application/json"})
    # Validation may name the field; otherwise the storage layer refuses it without one.
    param = response.json()["error"]["param"]
    assert param in (None, field)
    check_envelope(response, 400, param=param, code="invalid_value")
    assert http.get("/assistants").json()["data"] == []


def test_union_errors_name_the_real_field(http: httpx.Client) -> None:
    """``response_format`` is ``"auto"`` or a tagged object: a bad tag is named, not the union."""
    response = http.post("/assistants", json={"model": "m", "response_format": {"type": "x"}})
    err = check_envelope(response, 400, param="response_format.type", code="invalid_value")
    assert "json_schema" in err["message"]
    response = http.post("/assistants", json={"model": "m", "response_format": "bogus"})
    check_envelope(response, 400, param="response_format", code="invalid_value")
    response = http.post(
        "/assistants",
        json={"model": "m", "response_format": {"type": "json_schema", "json_schema": {}}},
    )
    check_envelope(
        response, 400, param="response_format.json_schema.name", code="missing_required_parameter"
    )


BAD_HELPER = {
    "file_search": {"vector_stores": [{"chunking_strategy": {"type": "static", "static": {}}}]}
}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/assistants", {"model": "m", "tool_resources": BAD_HELPER}),
        ("/threads", {"tool_resources": BAD_HELPER}),
        ("/threads/runs", {"assistant_id": "asst_x", "tool_resources": BAD_HELPER}),
        ("/threads/runs", {"assistant_id": "asst_x", "thread": {"tool_resources": BAD_HELPER}}),
    ],
    ids=["assistant", "thread", "thread-and-run", "thread-and-run-thread"],
)
def test_invalid_chunking_strategy_in_tool_resources_is_400(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    response = http.post(path, json=body)
    prefix = "thread." if "thread" in body else ""
    param = prefix + "tool_resources.file_search.vector_stores[0].chunking_strategy.static"
    check_envelope(response, 400, param=param + ".max_chunk_size_tokens", code=_ANY)
    assert http.get("/vector_stores").json()["data"] == []


@pytest.mark.parametrize("field", ["max_prompt_tokens", "max_completion_tokens"])
def test_token_caps_beyond_32_bits_are_400(client: OpenAI, http: httpx.Client, field: str) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    path = f"/threads/{thread.id}/runs"
    response = http.post(path, json={"assistant_id": assistant.id, field: 2**31})
    check_envelope(response, 400, param=field, code=_ANY)
    assert http.get(path).json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/assistants", {"model": "m", "temprature": 0.5}, "temprature"),
        ("/assistants", {"model": "m", "tools": [{"type": "file_search", "x": 1}]}, "tools[0].x"),
        ("/threads", {"messages": [{"role": "user", "content": "hi", "name": "n"}]}, None),
        ("/vector_stores", {"name": "s", "chunking": {"type": "auto"}}, "chunking"),
        ("/threads/runs", {"assistant_id": "asst_x", "stream_options": {}}, "stream_options"),
    ],
    ids=["top-level", "in-a-tool", "in-a-message", "vector-store", "run"],
)
def test_unknown_parameters_are_400(
    http: httpx.Client, path: str, body: dict[str, Any], param: str | None
) -> None:
    """A field the endpoint does not take is named, not silently dropped (nothing is stored)."""
    expected = param or "messages[0].name"
    response = http.post(path, json=body)
    err = check_envelope(response, 400, param=expected, code="unknown_parameter")
    assert err["message"] == f"Unknown parameter: '{expected}'."
    for listing in ("/assistants", "/vector_stores"):
        assert http.get(listing).json()["data"] == []


def test_large_valid_body_is_parsed_and_stored(http: httpx.Client) -> None:
    """A body past the inline parse limit (parsed in a worker thread) is taken as sent."""
    texts = ["α" * 200_000, "b" * 150_000]
    body = {"messages": [{"role": "user", "content": t} for t in texts]}
    created = http.post("/threads", json=body)
    assert created.status_code == 200, created.json()
    listed = http.get(f"/threads/{created.json()['id']}/messages", params={"order": "asc"})
    assert [m["content"][0]["text"]["value"] for m in listed.json()["data"]] == texts
