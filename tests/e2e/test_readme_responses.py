"""The README's "From Assistants to Responses" programs, run exactly as written: the same
answers both ways, and the thread moved in place continues with its whole history."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ServerProcess
from tests.support.readme import blocks
from tests.support.scripted_chat import ScriptedChatServer

PLACEHOLDER = 'OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-assistd-...")'
ANSWERS = ["You said: Solve 3x + 11 = 14.", "You said: Now explain the first step."]


def run(program: str) -> list[str]:
    """Run a program with this interpreter (the SDK installed); its printed lines."""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_readme_programs_answer_alike_and_the_thread_moves(
    server: ServerProcess, api_key: str, chat: ScriptedChatServer
) -> None:
    assistants, responses, moving = blocks("responses-migration", "python")
    ours = f'OpenAI(base_url="{server.api}", api_key="{api_key}")'
    assert PLACEHOLDER in assistants
    assert PLACEHOLDER in responses

    assert run(responses.replace(PLACEHOLDER, ours)) == ANSWERS
    moved = run(assistants.replace(PLACEHOLDER, ours) + "\n" + moving)
    assert moved == [*ANSWERS, "You said: And the second step?"]

    (sent,) = [r for r in chat.requests if "And the second step?" in json.dumps(r["messages"])]
    history = [(m["role"], m["content"]) for m in sent["messages"]]
    assert history == [
        ("system", "You are a personal math tutor."),
        ("user", "Solve 3x + 11 = 14."),
        ("assistant", ANSWERS[0]),
        ("user", "Now explain the first step."),
        ("assistant", ANSWERS[1]),
        ("user", "And the second step?"),
    ]
