"""The openai-node end-to-end suite (``tests/node``), run with Node's test runner.

The Node tests drive the session's server (and so the scripted chat backend, through
``#script`` messages) with the official ``openai`` npm package pinned in
``tests/node/package.json``. They get the server and two keys of different projects from
``ASSISTD_BASE_URL``, ``ASSISTD_API_KEY`` and ``ASSISTD_OTHER_KEY``. ``node --test`` runs
every ``*.test.mjs`` there, each file in a process of its own, so a new file needs no change
here.

CI installs the package with ``npm ci --prefix tests/node``; this test runs ``npm ci`` itself
when ``tests/node/node_modules`` is missing. Node.js is part of the test tooling: without
``node`` on PATH this test fails, it does not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NPM_CI_TIMEOUT = 300
NODE_TEST_TIMEOUT = 600


def tool(name: str) -> str:
    """The full path of ``name`` on PATH; fails the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the openai-node end-to-end suite (tests/node) needs "
            "Node.js 20+ and npm. Install them (e.g. Debian's nodejs package) and run again."
        )
    return path


def run(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def summary(output: str) -> dict[str, int]:
    """The closing counts of Node's test runner (``# pass 9`` in TAP, ``ℹ pass 9`` in spec)."""
    return {
        name: int(count)
        for name, count in re.findall(r"^(?:#|ℹ) (tests|pass|fail|cancelled) (\d+)$", output, re.M)
    }


def test_openai_node_suite(server: ServerProcess, api_key: str, other_key: str) -> None:
    node = tool("node")
    # The SDK reads OPENAI_* variables as defaults: none of the caller's may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        npm = tool("npm")
        installed = run([npm, "ci", "--no-audit", "--no-fund"], env, NPM_CI_TIMEOUT)
        assert installed.returncode == 0, (
            f"npm ci in {NODE_DIR} failed:\n{installed.stdout}\n{installed.stderr}"
        )
    env.update(
        ASSISTD_BASE_URL=server.api,
        ASSISTD_API_KEY=api_key,
        ASSISTD_OTHER_KEY=other_key,
        NO_COLOR="1",
    )
    result = run([node, "--test"], env, NODE_TEST_TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed (exit {result.returncode}):\n{output}"
    counts = summary(output)
    assert counts.get("fail") == 0, output
    assert counts.get("cancelled", 0) == 0, output
    assert counts.get("pass", 0) >= 1, f"node --test ran no test:\n{output}"
