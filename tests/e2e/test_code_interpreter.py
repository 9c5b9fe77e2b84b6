"""code_interpreter end to end: the official SDK, the scripted chat backend, real Docker
sandboxes (one per thread) run by the session's worker process."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from typing import Any

import docker
import httpx
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import ImageFile

from tests.conftest import ServerProcess
from tests.support.scripted_chat import ScriptedChatServer
from tests.support.scripted_chat import script as scripted_turn

PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.usefixtures("sandbox_image")


def script(*steps: dict[str, Any]) -> str:
    """A ``#script`` with tool rounds: each step calls code_interpreter or replies."""
    return scripted_turn(steps=list(steps))


def code(source: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": source}}]}


def tutor(client: OpenAI, **kwargs: Any) -> Any:
    return client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer questions.",
        tools=[{"type": "code_interpreter"}],
        **kwargs,
    )


def run_turn(client: OpenAI, assistant_id: str, thread_id: str, text: str, **kwargs: Any) -> Any:
    client.beta.threads.messages.create(thread_id, role="user", content=text, **kwargs)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", (run.status, run.last_error)
    return run


def code_calls(client: OpenAI, thread_id: str, run_id: str) -> list[Any]:
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    return [
        call
        for step in steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
        if call.type == "code_interpreter"
    ]


def last_reply(client: OpenAI, thread_id: str) -> Any:
    return client.beta.threads.messages.list(thread_id, limit=1).data[0]


def reply_text(message: Any) -> str:
    return "".join(p.text.value for p in message.content if p.type == "text")


def logs_of(call: Any) -> str:
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


@pytest.mark.sdk_matrix
def test_math_tutor_solves_then_plots(client: OpenAI) -> None:
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run = run_turn(
        client,
        assistant.id,
        thread.id,
        "Solve 3x + 11 = 14. "
        + script(code("x = (14 - 11) / 3\nprint(f'x = {x}')"), {"reply": "The answer: {output0}"}),
    )
    [call] = code_calls(client, thread.id, run.id)
    assert call.code_interpreter.input == "x = (14 - 11) / 3\nprint(f'x = {x}')"
    assert logs_of(call) == "x = 1.0\n"
    assert reply_text(last_reply(client, thread.id)) == "The answer: x = 1.0\n"

    run = run_turn(
        client,
        assistant.id,
        thread.id,
        "Now plot y = 3x + 11 around the solution. "
        + script(
            code(
                "import numpy as np\nimport matplotlib.pyplot as plt\n"
                "xs = np.linspace(x - 5, x + 5, 50)\nplt.plot(xs, 3 * xs + 11)\n"
                "plt.axhline(14)\nplt.show()"
            ),
            {"reply": "Here is the plot."},
        ),
    )
    [call] = code_calls(client, thread.id, run.id)
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    message = last_reply(client, thread.id)
    assert message.run_id == run.id
    assert [p.type for p in message.content] == ["image_file", "text"]
    image_id = message.content[0].image_file.file_id
    assert image_id == images[0].image.file_id
    data = client.files.content(image_id).read()
    assert data.startswith(PNG)
    assert len(data) > 1000
    stored = client.files.retrieve(image_id)
    assert stored.purpose == "assistants_output"
    assert stored.bytes == len(data)


def test_csv_attached_analysed_and_returned_as_file_path(client: OpenAI) -> None:
    csv = b"city,temp\nParis,21\nRome,27\nOslo,12\n"
    upload = client.files.create(file=("temps.csv", io.BytesIO(csv)), purpose="assistants")
    assistant = tutor(client)
    thread = client.beta.threads.create()
    analysis = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/temps.csv')\n"
        "print(df.temp.mean())\n"
        "df.sort_values('temp').to_csv('/mnt/data/sorted.csv', index=False)"
    )
    run = run_turn(
        client,
        assistant.id,
        thread.id,
        "Average temperature, and the rows sorted? "
        + script(
            code(analysis),
            {"reply": "Mean {output0}. [Download](sandbox:/mnt/data/sorted.csv)"},
        ),
        attachments=[{"file_id": upload.id, "tools": [{"type": "code_interpreter"}]}],
    )
    [call] = code_calls(client, thread.id, run.id)
    assert logs_of(call) == "20.0\n"
    message = last_reply(client, thread.id)
    text = message.content[0].text
    link = "sandbox:/mnt/data/sorted.csv"
    assert text.value.startswith("Mean 20.0")
    [note] = text.annotations
    assert note.type == "file_path"
    assert note.text == link
    assert text.value[note.start_index : note.end_index] == link
    made = client.files.retrieve(note.file_path.file_id)
    assert made.purpose == "assistants_output"
    assert made.filename == "/mnt/data/sorted.csv"
    content = client.files.content(made.id).read()
    assert content == b"city,temp\nOslo,12\nParis,21\nRome,27\n"


def test_files_from_tool_resources_are_in_mnt_data(
    client: OpenAI, chat: ScriptedChatServer
) -> None:
    data = client.files.create(
        file=("numbers.txt", io.BytesIO(b"1\n2\n3\n4\n")), purpose="assistants"
    )
    assistant = tutor(client, tool_resources={"code_interpreter": {"file_ids": [data.id]}})
    thread = client.beta.threads.create()
    run = run_turn(
        client,
        assistant.id,
        thread.id,
        "Sum the numbers file. "
        + script(
            code("print(sum(int(v) for v in open('/mnt/data/numbers.txt')))"),
            {"reply": "{output0}"},
        ),
    )
    [call] = code_calls(client, thread.id, run.id)
    assert logs_of(call) == "10\n"
    # The model was told where the file is, and sees the tool as a function.
    [sent] = [
        r
        for r in chat.state.requests
        if "Sum the numbers file" in json.dumps(r["messages"])
        and r["messages"][-1]["role"] == "user"
    ]
    assert sent["messages"][0]["role"] == "system"
    assert "Files in /mnt/data: /mnt/data/numbers.txt" in sent["messages"][0]["content"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["code_interpreter"]


def test_state_kept_between_runs_and_threads_isolated(client: OpenAI) -> None:
    assistant = tutor(client)
    first = client.beta.threads.create()
    run_turn(
        client,
        assistant.id,
        first.id,
        script(
            code("secret = 40 + 2\nopen('/mnt/data/note.txt', 'w').write('kept')"),
            {"reply": "stored"},
        ),
    )
    run = run_turn(
        client,
        assistant.id,
        first.id,
        script(code("print(secret, open('/mnt/data/note.txt').read())"), {"reply": "{output0}"}),
    )
    assert logs_of(code_calls(client, first.id, run.id)[0]) == "42 kept\n"

    second = client.beta.threads.create()
    run = run_turn(
        client,
        assistant.id,
        second.id,
        script(
            code("import os\nprint(os.listdir('/mnt/data'))\nprint(secret)"),
            {"reply": "{output0}"},
        ),
    )
    out = logs_of(code_calls(client, second.id, run.id)[0])
    assert out.startswith("[]\n")
    assert "NameError: name 'secret' is not defined" in out


def test_streamed_run_sends_code_input_and_outputs(client: OpenAI) -> None:
    assistant = tutor(client)
    thread = client.beta.threads.create()
    source = 'for i in range(3):\n    print("line", i)'
    client.beta.threads.messages.create(
        thread.id, role="user", content=script(code(source), {"reply": "done"})
    )
    inputs: list[str] = []
    logs: list[str] = []
    events: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            events.append(event.event)
            if event.event != "thread.run.step.delta":
                continue
            details = event.data.delta.step_details
            if details is None or details.type != "tool_calls":
                continue
            for call in details.tool_calls or []:
                if call.type != "code_interpreter" or call.code_interpreter is None:
                    continue
                if call.code_interpreter.input:
                    inputs.append(call.code_interpreter.input)
                for output in call.code_interpreter.outputs or []:
                    if output.type == "logs":
                        logs.append(output.logs or "")
        final = stream.get_final_run()
    assert final.status == "completed"
    assert "".join(inputs) == source
    assert len(inputs) >= 2  # streamed as the model wrote it
    assert logs == ["line 0\nline 1\nline 2\n"]
    assert events.index("thread.run.step.created") < events.index("thread.run.step.delta")
    assert events[-1] == "thread.run.completed"


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here so the test knows the exact bytes the code writes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return PNG + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class ImageHandler(AssistantEventHandler):
    """Keeps the stream's events and the image parts the SDK reports done."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.images_done: list[str] = []

    def on_event(self, event: Any) -> None:
        self.events.append(event)

    def on_image_file_done(self, image_file: ImageFile) -> None:
        self.images_done.append(image_file.file_id)


@pytest.mark.parametrize("streamed", [False, True], ids=["polled", "streamed"])
def test_linked_images_the_code_wrote_are_image_file_parts(client: OpenAI, streamed: bool) -> None:
    png = tiny_png()
    source = (
        f"open('/mnt/data/chart.png', 'wb').write(bytes.fromhex('{png.hex()}'))\n"
        "open('/mnt/data/photo.JPG', 'wb').write(b'\\xff\\xd8\\xff\\xe0 not really a jpeg')\n"
        "open('/mnt/data/data.csv', 'w').write('a,b\\n1,2\\n')"
    )
    reply = (
        "A [photo](sandbox:/mnt/data/photo.JPG), the [chart](sandbox:/mnt/data/chart.png), "
        "the [data](sandbox:/mnt/data/data.csv), the [chart](sandbox:/mnt/data/chart.png) again."
    )
    assistant = tutor(client)
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread.id, role="user", content="Draw. " + script(code(source), {"reply": reply})
    )
    handler = ImageHandler()
    if streamed:
        with client.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
        ) as stream:
            stream.until_done()
            snapshot = stream.get_final_messages()[-1]
        assert stream.get_final_run().status == "completed"
    else:
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
        )
        assert run.status == "completed", (run.status, run.last_error)
    message = last_reply(client, thread.id)
    assert [p.type for p in message.content] == ["text", "image_file", "image_file"]
    text = message.content[0].text
    assert text.value == reply
    paths = {n.text: n.file_path.file_id for n in text.annotations if n.type == "file_path"}
    chart, photo = paths["sandbox:/mnt/data/chart.png"], paths["sandbox:/mnt/data/photo.JPG"]
    # In link order, once each; the CSV is only an annotation.
    assert [p.image_file.file_id for p in message.content[1:]] == [photo, chart]
    assert client.files.content(chart).read() == png
    assert client.files.retrieve(chart).filename == "/mnt/data/chart.png"
    if streamed:
        assert snapshot.model_dump() == message.model_dump()
        assert handler.images_done == [photo, chart]
        mine = [
            e
            for e in handler.events
            if e.event.startswith("thread.message.") and e.data.id == message.id
        ]
        shown = [
            (p.index, p.image_file.file_id)
            for e in mine
            if e.event == "thread.message.delta"
            for p in e.data.delta.content or []
            if p.type == "image_file" and p.image_file is not None
        ]
        assert shown == [(1, photo), (2, chart)]
        assert mine[-1].event == "thread.message.completed"


def test_a_saved_and_shown_figure_is_not_shown_twice(client: OpenAI) -> None:
    source = (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
        "plt.savefig('/mnt/data/plot.png')\nplt.show()"
    )
    reply = "The plot: [plot.png](sandbox:/mnt/data/plot.png)"
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run = run_turn(
        client, assistant.id, thread.id, "Plot. " + script(code(source), {"reply": reply})
    )
    [call] = code_calls(client, thread.id, run.id)
    [plot] = [o.image.file_id for o in call.code_interpreter.outputs if o.type == "image"]
    message = last_reply(client, thread.id)
    assert [p.type for p in message.content] == ["image_file", "text"]
    assert message.content[0].image_file.file_id == plot
    [note] = message.content[1].text.annotations
    assert note.type == "file_path"
    assert client.files.content(note.file_path.file_id).read().startswith(PNG)


HOSTILE = [
    pytest.param(
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)",
        ["Network is unreachable"],
        id="network",
    ),
    pytest.param(
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)",
        ["URLError"],
        id="dns",
    ),
    pytest.param(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        ["time limit"],
        id="fork-bomb",
    ),
    pytest.param(
        "import numpy as np\nblock = np.ones(4 * 1024**3 // 8)\nprint(block.sum())",
        ["memory"],
        id="allocate-4gb",
    ),
    pytest.param("while True:\n    pass", ["time limit", "KeyboardInterrupt"], id="infinite-loop"),
    pytest.param(
        "print(open('/proc/1/cmdline').read().replace('\\0', ' '))\n"
        "import os\nprint(sorted(os.listdir('/home')), os.path.exists('/root/.ssh'))\n"
        "open('/etc/shadow').read()",
        ["PermissionError", "[] False"],
        id="read-host-files",
    ),
    pytest.param(
        "open('/etc/evil', 'w').write('x')",
        ["Read-only file system"],
        id="write-outside-mnt-data",
    ),
]


@pytest.mark.parametrize(("source", "expected"), HOSTILE)
def test_hostile_code_is_contained(
    client: OpenAI, server: ServerProcess, source: str, expected: list[str]
) -> None:
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run = run_turn(
        client,
        assistant.id,
        thread.id,
        script(code("before = 7"), code(source), code("print('after', 1 + 1)"), {"reply": "ok"}),
    )
    calls = code_calls(client, thread.id, run.id)
    assert len(calls) == 3
    out = logs_of(calls[1])
    for fragment in expected:
        assert fragment in out, out
    # The session (or a fresh one that replaced it) still runs code.
    assert logs_of(calls[2]) == "after 2\n"
    assert httpx.get(server.api.removesuffix("/v1") + "/health", timeout=5).status_code == 200


def test_host_files_are_not_visible(client: OpenAI, tmp_path: Any) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("do not read")
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run = run_turn(
        client,
        assistant.id,
        thread.id,
        script(
            code(f"import os\nprint(os.path.exists({str(secret)!r}), os.getuid())"),
            {"reply": "{output0}"},
        ),
    )
    assert logs_of(code_calls(client, thread.id, run.id)[0]) == "False 1000\n"


def test_sandbox_containers_are_hardened(client: OpenAI) -> None:
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run_turn(client, assistant.id, thread.id, script(code("pass"), {"reply": "ok"}))
    engine = docker.from_env()
    [container] = engine.containers.list(filters={"name": f"assistd-sbx-{thread.id}"})
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 128
    assert host["Memory"] == 512 * 1024**2
    assert set(host["Tmpfs"]) == {"/tmp", "/mnt/data"}
    assert container.attrs["Config"]["User"] == "1000:1000"
    engine.close()


def test_deleting_a_thread_removes_its_sandbox(client: OpenAI) -> None:
    assistant = tutor(client)
    thread = client.beta.threads.create()
    run_turn(client, assistant.id, thread.id, script(code("print(1)"), {"reply": "ok"}))
    engine = docker.from_env()
    name = f"assistd-sbx-{thread.id}"
    assert engine.containers.list(filters={"name": name})
    client.beta.threads.delete(thread.id)
    deadline = time.monotonic() + 20
    while engine.containers.list(all=True, filters={"name": name}):
        assert time.monotonic() < deadline, "the deleted thread's sandbox is still there"
        time.sleep(0.2)
    engine.close()
