"""A file whose name is too long for the sandbox, end to end: uploaded and attached with the
official SDK, placed by the server's worker under a shortened name, and the thread's later
code_interpreter calls still work."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from openai import OpenAI

pytestmark = pytest.mark.usefixtures("sandbox_image")


def code_turn(client: OpenAI, assistant_id: str, thread_id: str, source: str, **kw: Any) -> str:
    """One run that executes ``source``; the logs of its code_interpreter call."""
    steps = [
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": source}}]},
        {"reply": "done"},
    ]
    client.beta.threads.messages.create(
        thread_id, role="user", content="#script " + json.dumps({"steps": steps}), **kw
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", (run.status, run.last_error)
    [call] = [
        call
        for step in client.beta.threads.runs.steps.list(run.id, thread_id=thread_id)
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
        if call.type == "code_interpreter"
    ]
    return "".join(o.logs for o in call.code_interpreter.outputs if o.type == "logs")


def test_a_300_character_file_name_is_shortened_and_the_thread_keeps_working(
    client: OpenAI,
) -> None:
    name = "monthly-report-" + "x" * 281 + ".csv"
    assert len(name) == 300
    upload = client.files.create(file=(name, io.BytesIO(b"a,b\n1,2\n")), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    listed = code_turn(
        client,
        assistant.id,
        thread.id,
        "import os\n"
        "[name] = os.listdir('/mnt/data')\n"
        "print(name.startswith('monthly-report-xxx'), name.endswith('.csv'), len(name) < 200)\n"
        "print(open('/mnt/data/' + name).read().split())\n"
        "kept = 'yes'\n",
        attachments=[{"file_id": upload.id, "tools": [{"type": "code_interpreter"}]}],
    )
    assert listed == "True True True\n['a,b', '1,2']\n", listed
    again = code_turn(client, assistant.id, thread.id, "print(kept)")
    assert again == "yes\n", again
