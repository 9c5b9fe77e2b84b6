"""The Azure OpenAI shape of the API: ``AzureOpenAI(azure_endpoint=...)`` works unchanged."""

from __future__ import annotations

import io

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from tests.conftest import ServerProcess


def azure(server: ServerProcess, key: str, version: str = "2024-02-15-preview") -> AzureOpenAI:
    return AzureOpenAI(
        api_key=key, azure_endpoint=server.base_url, api_version=version, max_retries=0
    )


def test_azure_client_manages_objects(server: ServerProcess, api_key: str) -> None:
    client = azure(server, api_key)
    assistant = client.beta.assistants.create(
        model="my-deployment", tools=[{"type": "code_interpreter"}], metadata={"via": "azure"}
    )
    assert client.beta.assistants.retrieve(assistant.id).metadata == {"via": "azure"}
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    assert [m.content[0].type for m in client.beta.threads.messages.list(thread.id)] == ["text"]
    uploaded = client.files.create(file=("a.csv", io.BytesIO(b"x,y\n1,2\n")), purpose="assistants")
    assert client.files.content(uploaded.id).content == b"x,y\n1,2\n"
    assert client.beta.assistants.delete(assistant.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(assistant.id)


def test_azure_objects_are_the_same_objects(
    server: ServerProcess, api_key: str, client: OpenAI
) -> None:
    made = azure(server, api_key).beta.assistants.create(model="gpt-4o")
    assert client.beta.assistants.retrieve(made.id).id == made.id


def test_azure_run_with_deployment_name(server: ServerProcess, api_key: str) -> None:
    client = azure(server, api_key, "2024-10-21")
    assistant = client.beta.assistants.create(model="azure-gpt")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '#script {"reply": "deployment ok"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    text = client.beta.threads.messages.list(thread.id).data[0].content[0]
    assert text.type == "text"
    assert text.text.value == "deployment ok"


def test_missing_api_version_is_400(server: ServerProcess, api_key: str) -> None:
    response = httpx.get(f"{server.base_url}/openai/assistants", headers={"api-key": api_key})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "api-version"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("headers", [{}, {"api-key": "wrong-key-123456"}])
def test_missing_or_wrong_key_is_401(server: ServerProcess, headers: dict[str, str]) -> None:
    response = httpx.get(
        f"{server.base_url}/openai/assistants",
        params={"api-version": "2024-10-21"},
        headers=headers,
    )
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_other_project_is_404_under_openai(
    server: ServerProcess, api_key: str, other_key: str
) -> None:
    mine = azure(server, api_key).beta.assistants.create(model="gpt-4o")
    with pytest.raises(openai.NotFoundError) as info:
        azure(server, other_key).beta.assistants.retrieve(mine.id)
    assert f"No assistant found with id '{mine.id}'." in str(info.value)


def test_azure_responses_in_both_shapes(server: ServerProcess, api_key: str) -> None:
    classic = azure(server, api_key, "2025-04-01-preview")
    first = classic.responses.create(model="my-deployment", input="azure hello")
    assert first.output_text == "You said: azure hello"
    v1 = OpenAI(api_key=api_key, base_url=f"{server.base_url}/openai/v1", max_retries=0)
    second = v1.responses.create(
        model="my-deployment", input="and again", previous_response_id=first.id
    )
    assert second.output_text == "You said: and again"
    conversation = v1.conversations.create()
    assert classic.conversations.retrieve(conversation.id).id == conversation.id
    v1.close()
