"""A model routed in the models file with its own ``context_window`` and ``tokenizer``: the
``auto`` truncation fits an 8k local model's prompt, counted with the declared tokenizer; a
bad value stops the start with one line naming the model and the field."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from assistd.llm import tokens
from tests.conftest import own_server, stop_server
from tests.e2e.test_logs import base_env
from tests.e2e.test_startup import assistd, refused_url
from tests.support.scripted_chat import ScriptedChatServer, script

WINDOW = 8192
WORDS = ["river", "stone", "cloud", "lantern", "orchard", "copper", "meadow", "harbor", "violet"]


@pytest.fixture(scope="module")
def served(
    pg_root: str,
    server_env: dict[str, str],
    chat: ScriptedChatServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OpenAI]:
    """``assistd serve`` (with its worker) whose models file routes ``local-8k``, an 8k
    model counted with cl100k_base, to the scripted backend."""
    folder = tmp_path_factory.mktemp("limits")
    models = folder / "models.toml"
    models.write_text(
        f'[backends.scripted]\nbase_url = "{chat.base_url}"\napi_key = "k"\n\n'
        f'[models."local-8k"]\nbackend = "scripted"\ncontext_window = {WINDOW}\n'
        'tokenizer = "cl100k_base"\n'
    )
    env = {**server_env, "ASSISTD_MODELS__MODELS_FILE": str(models)}
    proc, client = own_server(pg_root, env, folder / "server.log")
    try:
        yield client
        client.close()
    finally:
        stop_server(proc)


def _long_text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _sent(chat: ScriptedChatServer, model: str, tag: str) -> list[dict[str, Any]]:
    """The messages of the one request for ``model`` that carries ``tag``."""
    [body] = [
        r
        for r in chat.requests
        if r.get("model") == model and any(tag in str(m.get("content")) for m in r["messages"])
    ]
    messages: list[dict[str, Any]] = body["messages"]
    return messages


def test_auto_truncation_fits_the_declared_window(served: OpenAI, chat: ScriptedChatServer) -> None:
    tag = uuid.uuid4().hex
    history = [{"role": "user", "content": f"part {i}: " + _long_text(i, 1200)} for i in range(12)]
    whole = sum(tokens.count_message(m, "cl100k_base") for m in history)
    assert whole > 1.5 * WINDOW  # well over the window
    thread = served.beta.threads.create(
        messages=[*history, {"role": "user", "content": f"{tag} " + script(reply="fits")}]
    )
    for model in ("local-8k", "gpt-4o"):
        assistant = served.beta.assistants.create(model=model)
        run = served.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
        )
        assert run.status == "completed", run.last_error
        assert run.truncation_strategy is not None
        assert run.truncation_strategy.type == "auto"

    small = _sent(chat, "local-8k", tag)
    # Fits the window minus the completion budget (a quarter of the window, at most 4096).
    budget = WINDOW - min(4096, WINDOW // 4)
    assert sum(tokens.count_message(m, "cl100k_base") for m in small) <= budget
    texts = [str(m.get("content")) for m in small]
    assert "part 0:" not in " ".join(texts)  # the oldest went first
    assert texts[-1].startswith(tag)  # the newest stays
    assert sum(1 for t in texts if t.startswith("part ")) >= 2  # only what had to go
    # A 128k model of the same thread gets all of it.
    big = _sent(chat, "gpt-4o", tag)
    assert sum(1 for m in big if str(m.get("content")).startswith("part ")) == len(history)


@pytest.mark.parametrize(
    ("line", "field"), [("context_window = 0", "context_window"), ('tokenizer = "x"', "tokenizer")]
)
def test_bad_model_limit_stops_the_start(tmp_path: Path, line: str, field: str) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[backends.local]\nbase_url = "http://127.0.0.1:9/v1"\n\n'
        f'[models."local-8k"]\nbackend = "local"\n{line}\n'
    )
    env = base_env(tmp_path)
    env.update(
        {
            "ASSISTD_MODELS__MODELS_FILE": str(models),
            "ASSISTD_DATABASE_URL": refused_url(),
            "ASSISTD_LOG_FORMAT": "text",
        }
    )
    done = assistd(env, "worker")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert '"local-8k"' in lines[0], lines[0]
    assert field in lines[0], lines[0]
