"""The Azure math-tutor program (examples/azure_math_tutor.py) runs against assistd unchanged:
only AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_VERSION point it here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.support.scripted_chat import ScriptedChatServer

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "azure_math_tutor.py"
SOLVE = "x = (14 - 11) / 3\nprint(f'x = {x}')"
PLOT = (
    "import numpy as np\nimport matplotlib.pyplot as plt\n"
    "xs = np.linspace(-5, 5, 100)\nplt.plot(xs, 3 * xs + 11)\nplt.title('y = 3x + 11')\nplt.show()"
)

pytestmark = pytest.mark.usefixtures("sandbox_image")


def test_azure_math_tutor_program_runs_unchanged(
    server: ServerProcess, api_key: str, chat: ScriptedChatServer, tmp_path: Path
) -> None:
    # The program's question carries no #script: the scripted model answers it by rule, as a
    # model would: run code to solve, run code to plot, then explain.
    # The session's scripted model is shared: the rule matches only the program's exact
    # question and is removed afterwards.
    question = "Solve 3x + 11 = 14, then plot y = 3x + 11 for x between -5 and 5."
    rule = (
        question,
        {
            "steps": [
                {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": SOLVE}}]},
                {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": PLOT}}]},
                {"reply": "The solution is x = 1. The plot shows the line crossing y = 14."},
            ]
        },
    )
    chat.state.rules.append(rule)
    try:
        _run_program(server, api_key, tmp_path)
    finally:
        chat.state.rules.remove(rule)


def _run_program(server: ServerProcess, api_key: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    env |= {
        "AZURE_OPENAI_API_KEY": api_key,
        "AZURE_OPENAI_ENDPOINT": server.api.removesuffix("/v1"),
        "AZURE_OPENAI_API_VERSION": "2024-05-01-preview",
    }
    done = subprocess.run(
        [sys.executable, str(PROGRAM)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"run run_\w+: completed", lines[0]), lines
    assert "user: Solve 3x + 11 = 14, then plot y = 3x + 11 for x between -5 and 5." in lines
    assert "assistant: The solution is x = 1. The plot shows the line crossing y = 14." in lines
    [saved] = [line for line in lines if "[plot saved to" in line]
    name = re.search(r"\[plot saved to (\S+)\]", saved)
    assert name is not None
    png = (tmp_path / name.group(1)).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000
