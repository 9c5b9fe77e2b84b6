"""A route's ``context_window`` and ``tokenizer`` in the models file: read, checked at load
(a bad value names the model and the field), and the defaults of unrouted models kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistd.llm import tokens
from assistd.llm.chat import ModelsFileError, router_from_environment


def _file(tmp_path: Path, model_lines: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(
        '[backends.local]\nbase_url = "http://127.0.0.1:11434/v1"\napi_key = "k"\n\n'
        f'[models."local-8k"]\nbackend = "local"\n{model_lines}'
    )
    return path


def test_route_declares_its_window_and_tokenizer(tmp_path: Path) -> None:
    path = _file(tmp_path, 'context_window = 8192\ntokenizer = "cl100k_base"\n')
    router = router_from_environment({"OPENAI_API_KEY": "k"}, path)
    assert router.context_window("local-8k") == 8192
    assert router.tokenizer("local-8k") == "cl100k_base"
    # Unrouted and undeclared models keep the family defaults.
    assert router.context_window("gpt-4o") == 128_000
    assert router.context_window("gpt-4.1-mini") == tokens.context_window("gpt-4.1-mini")
    assert router.tokenizer("gpt-4o") == "o200k_base"


def test_route_without_the_fields_keeps_the_defaults(tmp_path: Path) -> None:
    router = router_from_environment({}, _file(tmp_path, ""))
    assert router.context_window("local-8k") == 128_000
    assert router.tokenizer("local-8k") == "o200k_base"


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ("context_window = 0\n", "context_window"),
        ("context_window = -8192\n", "context_window"),
        ('context_window = "8k"\n', "context_window"),
        ("context_window = 8192.5\n", "context_window"),
        ("context_window = true\n", "context_window"),
        ('tokenizer = "llama3"\n', "tokenizer"),
        ("tokenizer = 100\n", "tokenizer"),
    ],
)
def test_bad_values_are_a_load_error_naming_model_and_field(
    tmp_path: Path, lines: str, field: str
) -> None:
    with pytest.raises(ModelsFileError) as info:
        router_from_environment({}, _file(tmp_path, lines))
    text = str(info.value)
    assert '"local-8k"' in text, text
    assert field in text, text


def test_tokenizer_changes_the_count() -> None:
    text = "Tokenizers of different families cut this sentence differently: ça, 東京, 🙂."
    assert tokens.count_text(text, "cl100k_base") != tokens.count_text(text, "o200k_base")
    message = {"role": "user", "content": text}
    assert tokens.count_message(message, "cl100k_base") == 4 + tokens.count_text(
        text, "cl100k_base"
    )
