"""Model backends: routing a model name to an Azure OpenAI deployment, and the SDK's
environment conventions for the default backend."""

from __future__ import annotations

from openai import OpenAI

from tests.support.scripted_chat import ScriptedChatServer


def test_azure_route_reaches_the_deployment(client: OpenAI, chat: ScriptedChatServer) -> None:
    assistant = client.beta.assistants.create(model="azure-gpt")
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '#script {"reply": "from azure"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert run.model == "azure-gpt"
    reply = client.beta.threads.messages.list(thread.id, order="desc").data[0]
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == "from azure"
    azure_calls = [c for c in chat.calls if c["path"].startswith("/openai/deployments/")]
    assert azure_calls, chat.calls[-3:]
    last = azure_calls[-1]
    assert last["path"] == "/openai/deployments/dep-1/chat/completions"
    assert last["query"]["api-version"] == "2024-10-21"
    assert last["api-key"] == "azure-secret"


def test_default_backend_uses_openai_base_url(client: OpenAI, chat: ScriptedChatServer) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o-mini")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "ping"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    mine = [c for c in chat.calls if c["model"] == "gpt-4o-mini"]
    assert mine
    assert mine[-1]["path"] == "/v1/chat/completions"
    assert mine[-1]["authorization"] == "Bearer sk-scripted"
    text = client.beta.threads.messages.list(thread.id).data[0].content[0]
    assert text.type == "text"
    assert text.text.value == "You said: ping"
