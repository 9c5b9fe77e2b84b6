"""The README's curl walk-through, run exactly as written against a real server."""

from __future__ import annotations

import os
import re
import subprocess

import httpx

from tests.conftest import ServerProcess
from tests.support.readme import blocks


def walkthrough() -> str:
    """The bash blocks between the README's curl-walkthrough markers, as one script."""
    found = blocks("curl-walkthrough", "bash")
    assert len(found) >= 5
    return "\n".join(found)


def _server_view(server: ServerProcess, result: subprocess.CompletedProcess[str]) -> str:
    """What the server says about the walk-through's thread (to explain a failure)."""
    found = re.findall(r"THREAD_ID=(thread_\w+)", result.stderr)
    keys = re.findall(r"KEY=(sk-assistd-\S+)", result.stderr)
    if not found or not keys:
        return ""
    headers = {"Authorization": f"Bearer {keys[0]}"}
    runs = httpx.get(f"{server.api}/threads/{found[-1]}/runs", headers=headers, timeout=10)
    messages = httpx.get(f"{server.api}/threads/{found[-1]}/messages", headers=headers, timeout=10)
    return f"\nruns: {runs.text}\nmessages: {messages.text}\n"


def test_readme_curl_walkthrough(server: ServerProcess, api_key: str) -> None:
    script = walkthrough()
    # The README's own placeholders are replaced by this server and key, nothing else.
    script = script.replace(
        "export ASSISTD=http://127.0.0.1:8000/v1", f"export ASSISTD={server.api}"
    )
    script = script.replace("export KEY=sk-assistd-...", f"export KEY={api_key}")
    result = subprocess.run(
        # -x: on failure the trace shows which command failed (and the ids it had).
        ["bash", "-xeuo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout + _server_view(server, result)
    out = result.stdout
    # The messages listing: the scripted model echoes the question.
    assert '"object":"list"' in out
    assert "You said: Solve 3x + 11 = 14." in out
    assert "completed None" in out  # how the run ended, and its last_error
    # The streamed run: canonical events, text deltas, and the end marker.
    events = re.findall(r"^event: (\S+)$", out, re.M)
    assert events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert "thread.message.delta" in events
    assert events[-2:] == ["thread.run.completed", "done"]
    assert "data: [DONE]" in out
    assert "Now explain the first step." in out
