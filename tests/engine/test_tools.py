"""The tool modules on their own: what each emits while the model writes a call, what running
it fills in, and how the Assistants face renders both (the e2e suite checks the real
sandbox, search and wire)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

import pytest
from sqlalchemy import select

from assistd.engine import prompt
from assistd.engine.deps import EngineDeps
from assistd.engine.events import (
    ArgumentsDelta,
    EngineEvent,
    ToolCallStarted,
    ToolInputDelta,
    ToolOutput,
)
from assistd.engine.face import AssistantsFace
from assistd.engine.tools import (
    CODE_INTERPRETER,
    FILE_SEARCH,
    FUNCTION,
    ToolCall,
    ToolContext,
    builtin_tools,
)
from assistd.engine.tools.code_interpreter import code_of, partial_code
from assistd.engine.tools.file_search import queries_of
from assistd.files.storage import LocalFileStorage
from assistd.llm.chat import BackendError
from assistd.models import File, Message, Run
from assistd.sandbox.manager import Execution, InputFile, OutputFile, SandboxManager
from assistd.vector_stores.search import Hit
from tests.engine.conftest import Env

ASSISTANTS = AssistantsFace()

# A 1x1 PNG (the sandbox's plots are PNG bytes).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _call(kind: str, arguments: str = "", index: int = 0) -> ToolCall:
    return ToolCall(
        id=f"call_{index}", name=kind, step_id="step_1", index=index, arguments=arguments, kind=kind
    )


def _rendered(events: list[EngineEvent]) -> list[dict[str, Any]]:
    """The tool call entries of the ``thread.run.step.delta`` events the face renders."""
    out = []
    for event in events:
        for name, data in ASSISTANTS.render(event):
            assert name == "thread.run.step.delta"
            assert data["id"] == "step_1"
            assert data["object"] == "thread.run.step.delta"
            assert data["delta"]["step_details"]["type"] == "tool_calls"
            (entry,) = data["delta"]["step_details"]["tool_calls"]
            out.append(entry)
    return out


def test_function_call_streams_its_arguments_as_written() -> None:
    events: list[EngineEvent] = []
    call = _call("function", '{"ci', index=1)
    call.name = "get_weather"
    FUNCTION.started(call, events.append)
    call.arguments += 'ty": "Oslo"}'
    FUNCTION.grew(call, 'ty": "Oslo"}', events.append)
    assert events == [
        ToolCallStarted("step_1", 1, "call_1", "function", "get_weather", '{"ci'),
        ArgumentsDelta("step_1", 1, 'ty": "Oslo"}'),
    ]
    assert _rendered(events) == [
        {
            "index": 1,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"ci', "output": None},
        },
        {"index": 1, "type": "function", "function": {"arguments": 'ty": "Oslo"}'}},
    ]
    assert ASSISTANTS.tool_call(call) == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}', "output": None},
    }


def test_code_streams_decoded_as_the_json_arrives() -> None:
    events: list[EngineEvent] = []
    call = _call("code_interpreter", '{"code": "print(')
    CODE_INTERPRETER.started(call, events.append)
    for piece in ['\\"a\\\\nb', '\\")\\n', "x = 1", '"}']:
        call.arguments += piece
        CODE_INTERPRETER.grew(call, piece, events.append)
    inputs = [e.text for e in events if isinstance(e, ToolInputDelta)]
    # Each piece is what was decoded since the last one; an escape cut in half waits.
    assert "".join(inputs) == 'print("a\\nb")\nx = 1'
    assert inputs[0] == "print("
    assert all(inputs)
    assert _rendered(events)[0] == {
        "index": 0,
        "id": "call_0",
        "type": "code_interpreter",
        "code_interpreter": {"input": "", "outputs": []},
    }
    assert _rendered(events)[1] == {
        "index": 0,
        "type": "code_interpreter",
        "code_interpreter": {"input": "print("},
    }


def test_code_argument_forms() -> None:
    assert code_of('{"code": "1 + 1"}') == "1 + 1"
    assert code_of('{"input": "2"}') == "2"
    assert code_of("  print(3)  ") == "print(3)"
    assert code_of('{"code": "unfinished \\u00e9') == "unfinished é"
    assert partial_code('{"code": "a\\u00') == "a"
    assert partial_code('{"other": 1}') == ""


def test_file_search_queries_and_announcement() -> None:
    assert queries_of('{"queries": ["a", " ", "b"]}') == ["a", "b"]
    assert queries_of('{"query": "solo"}') == ["solo"]
    assert queries_of("not json") == []
    assert queries_of(json.dumps({"queries": [str(i) for i in range(9)]})) == list("01234")
    events: list[EngineEvent] = []
    call = _call("file_search", '{"queries": ["x"]}')
    FILE_SEARCH.started(call, events.append)
    FILE_SEARCH.grew(call, "more", events.append)
    # The arguments are the server's business: only the announcement is streamed.
    assert _rendered(events) == [
        {"index": 0, "id": "call_0", "type": "file_search", "file_search": {}}
    ]


def test_file_search_details_as_stored() -> None:
    call = _call("file_search")
    # A call cut before it ran shows no ranking and no results.
    assert ASSISTANTS.tool_call(call)["file_search"] == {"ranking_options": {}, "results": []}
    call.queries, call.ranker, call.score_threshold = ["q"], "auto", 0.5
    call.hits = [Hit(1, "file-a", "a.txt", 0.75, "text a", {}, "vs_1")]
    assert ASSISTANTS.tool_call(call) == {
        "id": "call_0",
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": "auto", "score_threshold": 0.5},
            "results": [
                {
                    "file_id": "file-a",
                    "file_name": "a.txt",
                    "score": 0.75,
                    "content": [{"type": "text", "text": "text a"}],
                }
            ],
        },
        "_queries": ["q"],
    }


class FakeSandbox:
    """Records what it was asked to run and the input files' bytes (read through their
    chunks, as the real sandbox streams them)."""

    def __init__(self, result: Execution) -> None:
        self.result = result
        self.seen: list[tuple[str, str, dict[str, bytes]]] = []

    async def execute(self, thread_id: str, code: str, files: list[InputFile]) -> Execution:
        contents = {}
        for f in files:
            data = b""
            async for chunk in f.chunks():
                data += chunk
            contents[f.path] = data
        self.seen.append((thread_id, code, contents))
        return replace(self.result, notices=list(self.result.notices))


def _deps(env: Env, storage: LocalFileStorage, sandbox: FakeSandbox | None) -> EngineDeps:
    return EngineDeps(
        maker=env.maker,
        router=cast(Any, None),
        storage=storage,
        settings=env.settings,
        embedders=cast(Any, None),
        sandbox=cast(SandboxManager, sandbox),
    )


def _context(run: Run, **kwargs: Any) -> prompt.RunContext:
    return prompt.RunContext(run=run, history=[], steps=[], own_messages={}, **kwargs)


async def test_code_runs_with_streamed_inputs_and_keeps_outputs(env: Env, tmp_path: Any) -> None:
    storage = LocalFileStorage(tmp_path / "tool-files")
    await storage.put_bytes("input-key", b"a,b\n1,2\n" * 5000)
    sandbox = FakeSandbox(
        Execution(
            logs="done",
            images=[PNG],
            files=[OutputFile("/mnt/data/out.csv", b"x\n"), OutputFile("/mnt/data/big", None)],
            notices=["kernel restarted"],
        )
    )
    deps = _deps(env, storage, sandbox)
    files = [prompt.SandboxFile("file-in", "/mnt/data/in.csv", "input-key")]
    ctx_run = _context(
        Run(model="gpt-4o", tools=[{"type": "code_interpreter"}]), sandbox_files=files
    )
    assert list(builtin_tools(ctx_run)) == ["code_interpreter"]
    events: list[EngineEvent] = []
    call = _call("code_interpreter", json.dumps({"code": "print('done')"}))
    call.step_id = "step_1"
    await CODE_INTERPRETER.run(
        [call], ToolContext(deps, ctx_run, env.project, "thread_x", events.append)
    )

    assert sandbox.seen == [
        ("thread_x", "print('done')", {"/mnt/data/in.csv": b"a,b\n1,2\n" * 5000})
    ]
    (image,) = call.images
    assert list(call.files) == ["/mnt/data/out.csv"]
    async with env.maker() as session:
        stored = {
            f.id: f
            for f in await session.scalars(
                select(File).where(File.id.in_([image, *call.files.values()]))
            )
        }
    assert {f.purpose for f in stored.values()} == {"assistants_output"}
    assert stored[image].filename == "call_0_0.png"
    assert stored[call.files["/mnt/data/out.csv"]].bytes == 2
    # What the model sees names the plot, the file written and what happened to the rest.
    assert call.model_output.splitlines() == [
        "done",
        "[a plot was shown to the user]",
        "[file written: /mnt/data/out.csv (2 bytes)]",
        "[kernel restarted]",
        "[/mnt/data/big (not returned) was not kept as a file.]",
    ]
    assert call.logs is not None
    assert call.logs.startswith("done\n[kernel restarted]")
    assert events[-1] == ToolOutput("step_1", 0, "code_interpreter", call.logs, (image,))
    assert ASSISTANTS.tool_call(call)["code_interpreter"] == {
        "input": "print('done')",
        "outputs": [
            {"type": "logs", "logs": call.logs},
            {"type": "image", "image": {"file_id": image}},
        ],
    }
    assert _rendered([events[-1]])[0]["code_interpreter"]["outputs"][1] == {
        "index": 1,
        "type": "image",
        "image": {"file_id": image},
    }


async def test_code_without_a_sandbox_is_a_server_error(env: Env, tmp_path: Any) -> None:
    deps = _deps(env, LocalFileStorage(tmp_path / "f"), None)
    ctx = ToolContext(deps, _context(Run(model="gpt-4o", tools=[])), env.project, "t", print)
    with pytest.raises(BackendError) as raised:
        await CODE_INTERPRETER.run([_call("code_interpreter", "1")], ctx)
    assert raised.value.code == "server_error"


async def test_file_search_without_queries_searches_the_last_user_message(
    env: Env, tmp_path: Any
) -> None:
    deps = _deps(env, LocalFileStorage(tmp_path / "f"), None)
    run = Run(model="gpt-4o", tools=[{"type": "file_search"}])
    question = Message(
        role="user", content=[{"type": "text", "text": {"value": "where?", "annotations": []}}]
    )
    ctx_run = replace(_context(run), history=[question])
    call = _call("file_search", "{}")
    await FILE_SEARCH.run([call], ToolContext(deps, ctx_run, env.project, "t", print))
    assert call.queries == ["where?"]
    assert (call.ranker, call.score_threshold, call.hits) == ("default_2024_08_21", 0.0, [])
