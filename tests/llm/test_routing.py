"""Unit tests of the model router (no network: clients are only constructed)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from assistd.llm.chat import NoBackendError, OpenAIChatBackend, router_from_environment


def test_openai_environment_is_the_default_backend() -> None:
    router = router_from_environment(
        {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    backend = router.backend_for("any-model")
    assert isinstance(backend, OpenAIChatBackend)
    assert str(backend.client.base_url) == "http://127.0.0.1:9/v1/"
    assert backend.client.api_key == "k"


def test_azure_environment_builds_an_azure_client() -> None:
    router = router_from_environment(
        {
            "AZURE_OPENAI_ENDPOINT": "https://example-resource.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "az",
            "OPENAI_API_VERSION": "2024-10-21",
        }
    )
    backend = router.backend_for("gpt-4o")
    assert isinstance(backend, OpenAIChatBackend)
    assert isinstance(backend.client, openai.AsyncAzureOpenAI)


def test_no_backend_is_a_clear_error() -> None:
    router = router_from_environment({})
    with pytest.raises(NoBackendError) as info:
        router.backend_for("gpt-4o")
    assert "gpt-4o" in info.value.message
    assert info.value.code == "invalid_prompt"


def test_models_file_routes_names_and_deployments(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[backends.local]\nbase_url = "http://127.0.0.1:11434/v1"\napi_key_env = "LOCAL_KEY"\n'
        '[models."llama3.1"]\nbackend = "local"\ndeployment = "llama3.1:8b"\n'
    )
    router = router_from_environment({"LOCAL_KEY": "secret"}, path)
    backend = router.backend_for("llama3.1")
    assert isinstance(backend, OpenAIChatBackend)
    assert backend.client.api_key == "secret"
    assert backend.deployment_for["llama3.1"] == "llama3.1:8b"
    with pytest.raises(NoBackendError):
        router.backend_for("unrouted")
