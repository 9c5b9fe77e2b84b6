"""The playground's Responses mode in a real browser: a streamed answer, a function call
answered by hand (chained and in a conversation), tools with citations and code, and a
conversation reopened after a reload, against the session's server and scripted model."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.sync_api import FilePayload, Page, Request, expect

from tests.browser.conftest import NARROW, Watched
from tests.browser.test_playground import connect
from tests.support.scripted_chat import script

WEATHER = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
)


def responses_mode(web: Watched, key: str) -> Page:
    """Connect and switch the page to the Responses API."""
    page = connect(web, key)
    page.click("#mode-responses")
    expect(page.locator("#view-responses")).to_be_visible()
    expect(page).to_have_url(web.origin + "/playground#responses")
    return page


def send(page: Page, text: str) -> None:
    """Type a message and send it with the keyboard (Ctrl+Enter)."""
    page.fill("#resp-text", text)
    page.focus("#resp-text")
    page.keyboard.press("Control+Enter")


def body_of(request: Request) -> dict[str, Any]:
    """The JSON body the page sent."""
    body = request.post_data_json
    assert isinstance(body, dict)
    return body


def last_answer(page: Page) -> Any:
    return page.locator("#resp-items .msg.assistant").last


def test_streamed_answer_in_responses_mode(web: Watched, key: str) -> None:
    page = responses_mode(web, key)
    # The mode switch shows this mode's views only; the vector stores serve both.
    expect(page.locator('.nav[data-view="chat"]')).to_be_hidden()
    expect(page.locator('.nav[data-view="responses"]')).to_be_visible()
    expect(page.locator('.nav[data-view="stores"]')).to_be_visible()
    # The model field suggests the server's models.
    expect(page.locator('#resp-models option[value="scripted-gpt"]')).to_have_count(1)

    page.fill("#resp-instructions", "Count plainly.")
    words = "one two three four five six seven eight nine ten eleven twelve"
    with page.expect_request("**/v1/responses") as sent:
        send(page, "Count for me. " + script(reply=words, delay_ms=120))
    body = body_of(sent.value)
    assert body["stream"] is True
    assert body["instructions"] == "Count plainly."
    assert body["conversation"].startswith("conv_")

    # Streamed: part of the answer is on the page before the rest has arrived.
    page.wait_for_function(
        """() => {
            const t = document.querySelector('#resp-items .msg.assistant .text');
            return t && t.textContent.includes('three') && !t.textContent.includes('twelve');
        }"""
    )
    expect(last_answer(page).locator(".text")).to_have_text(words)
    expect(page.locator("#resp-status")).to_have_text("completed")
    expect(page.locator("#resp-summary")).to_contain_text(re.compile(r"usage: \d+ in"))
    expect(page.locator("#resp-summary")).to_contain_text(body["conversation"])
    expect(page.locator("#resp-title")).to_have_text(body["conversation"])
    listed = page.locator(f'#conv-list button.item[data-id="{body["conversation"]}"]')
    expect(listed).to_contain_text("Count for me.")

    page.click("#resp-tab-code")
    code = page.locator("#resp-exchanges")
    expect(code).to_contain_text("client.responses.create")
    expect(code).to_contain_text("client.conversations.create")
    expect(code).to_contain_text("response.output_text.delta")
    page.click("#resp-tab-summary")
    web.screenshot("responses-1280")
    page.set_viewport_size(NARROW)
    web.screenshot("responses-390")

    # Back to the Assistants API: its views return, the Responses view goes.
    page.click("#mode-assistants")
    expect(page.locator("#view-assistants")).to_be_visible()
    expect(page.locator("#view-responses")).to_be_hidden()
    expect(page.locator('.nav[data-view="responses"]')).to_be_hidden()
    web.assert_clean()
    assert not [u for u in web.requests if key in u]


def test_function_call_round_trip_chained_and_in_a_conversation(web: Watched, key: str) -> None:
    page = responses_mode(web, key)
    page.fill("#resp-functions", WEATHER)
    plan = script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        after_tools="It is {output0} in Paris.",
    )

    # Chained: the outputs go to a new response that follows the one that called.
    page.select_option("#resp-memory", "previous")
    expect(page.locator("#resp-title")).to_have_text("New chain")
    with page.expect_response("**/v1/responses") as first:
        send(page, "Weather in Paris? " + plan)
    chained = body_of(first.value.request)
    assert "conversation" not in chained
    assert chained["tools"] == [{"type": "function", **json.loads(WEATHER)[0]}]
    pending = page.locator("#resp-items form.pending")
    expect(pending).to_contain_text('get_weather({"city": "Paris"})')
    call = page.locator("#resp-items .tool.function_call")
    expect(call.locator(".args")).to_have_text('{"city": "Paris"}')
    expect(page.locator("#resp-status")).to_have_text("completed")
    first_id = page.locator("#resp-summary .mono").first.inner_text()
    assert first_id.startswith("resp_")
    expect(page.locator("#resp-items .fn-output")).to_be_focused()
    web.screenshot("responses-function-call-1280")
    page.keyboard.type("sunny")
    with page.expect_request("**/v1/responses") as second:
        page.keyboard.press("Control+Enter")
    body = body_of(second.value)
    assert body["previous_response_id"] == first_id
    assert body["input"][0]["type"] == "function_call_output"
    assert body["input"][0]["output"] == "sunny"
    expect(last_answer(page).locator(".text")).to_have_text("It is sunny in Paris.")
    expect(call.locator(".fn-result")).to_have_text("output: sunny")
    expect(page.locator("#resp-summary")).to_contain_text(f"follows {first_id}")
    expect(pending).to_have_count(0)

    # In a conversation: the conversation holds the call, the next response only the output.
    page.select_option("#resp-memory", "conversation")
    expect(page.locator("#resp-items > li")).to_have_count(0)
    send(page, "And in Rome? " + plan.replace("Paris", "Rome"))
    expect(pending).to_contain_text('get_weather({"city": "Rome"})')
    page.fill("#resp-items .fn-output", "windy")
    with page.expect_request("**/v1/responses") as third:
        page.click("#resp-items form.pending button[type=submit]")
    body = body_of(third.value)
    assert body["conversation"].startswith("conv_")
    assert "previous_response_id" not in body
    assert [i["type"] for i in body["input"]] == ["function_call_output"]
    expect(last_answer(page).locator(".text")).to_have_text("It is windy in Rome.")
    expect(page.locator("#resp-status")).to_have_text("completed")
    web.assert_clean()


KEEPER = (
    "# The lighthouse keeper\n\n"
    "The keeper of the northern light rewinds the great clock every forty-one days, "
    "always at dawn, with a brass key kept in the lantern room.\n"
)
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3], [1, 4, 9])\n"
    "plt.show()\n"
    "print('plotted squares')"
)


def test_tools_and_a_conversation_reopened_after_reload(
    web: Watched, key: str, sandbox_image: str
) -> None:
    page = connect(web, key)
    page.click('.nav[data-view="stores"]')
    page.fill("#store-name", "Lighthouse")
    page.click("#store-form button")
    expect(page.locator("#store-title")).to_have_text("Lighthouse")
    page.set_input_files(
        "#store-upload",
        files=[FilePayload(name="keeper.md", mimeType="text/markdown", buffer=KEEPER.encode())],
    )
    expect(page.locator("#store-files tr").first).to_have_attribute(
        "data-status", "completed", timeout=60_000
    )
    store_id = page.get_attribute('#store-list [aria-current="true"]', "data-id")
    assert (store_id or "").startswith("vs_")

    page.click("#mode-responses")
    page.check("#resp-tool-fs")
    expect(page.locator("#resp-stores")).to_have_value(str(store_id))
    page.check("#resp-tool-ci")

    # file_search: the results are shown, and the answer cites the file with a quote.
    plan = script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": ["clock rewinding"]}}],
        after_tools="Every forty-one days 【0:0†keeper.md】.",
    )
    with page.expect_request("**/v1/responses") as sent:
        send(page, "How often is the clock rewound? " + plan)
    body = body_of(sent.value)
    assert body["tools"] == [
        {"type": "file_search", "vector_store_ids": [store_id]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    assert sorted(body["include"]) == ["code_interpreter_call.outputs", "file_search_call.results"]
    search = page.locator("#resp-items .tool.file_search_call")
    expect(search).to_contain_text("clock rewinding")
    expect(search.locator(".results")).to_contain_text("keeper.md")
    answer = last_answer(page)
    expect(answer.locator(".text")).to_have_text("Every forty-one days [1].")
    expect(answer.locator(".citation .source-file")).to_have_text("keeper.md")
    expect(answer.locator(".citation .quote")).to_contain_text("rewinds the great clock")
    expect(page.locator("#resp-status")).to_have_text("completed")

    # code_interpreter: the code streams in, then its logs and its plot.
    steps = [
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": PLOT}}]},
        {"reply": "Plotted.", "delay_ms": 20},
    ]
    send(page, "Plot the squares. " + script(steps=steps))
    code = page.locator("#resp-items .tool.code_interpreter_call")
    expect(code.locator("pre.input")).to_contain_text("plt.plot([1, 2, 3], [1, 4, 9])")
    expect(code.locator("pre.logs")).to_contain_text("plotted squares", timeout=60_000)
    plot = code.locator("img.generated")
    expect(plot).to_have_attribute("src", re.compile("^blob:"))
    assert plot.evaluate("img => img.decode().then(() => img.naturalWidth)") > 100
    expect(last_answer(page).locator(".text")).to_have_text("Plotted.")
    expect(page.locator("#resp-status")).to_have_text("completed")
    conversation = page.inner_text("#resp-title")
    assert conversation.startswith("conv_")
    web.screenshot("responses-tools-1280")

    # After a reload the conversation is listed; opening it shows its items in order.
    page.reload()
    expect(page.locator("#key-status")).to_have_text("Connected")
    expect(page.locator("#view-responses")).to_be_visible()
    page.click(f'#conv-list button.item[data-id="{conversation}"]')
    items = page.locator("#resp-items > li")
    expect(items).to_have_count(6)
    kinds = items.evaluate_all(
        "els => els.map(e => [...e.classList].filter(c => c !== 'tool' && c !== 'msg').join())"
    )
    assert kinds == [
        "user",
        "file_search_call",
        "assistant",
        "user",
        "code_interpreter_call",
        "assistant",
    ]
    expect(items.nth(0)).to_contain_text("How often is the clock rewound?")
    expect(items.nth(2).locator(".citation .source-file")).to_have_text("keeper.md")
    expect(items.nth(2).locator(".citation .quote")).to_contain_text("rewinds the great clock")
    expect(items.nth(4).locator("pre.logs")).to_contain_text("plotted squares")
    expect(items.nth(4).locator("img.generated")).to_have_attribute("src", re.compile("^blob:"))
    expect(items.nth(5)).to_have_text(re.compile("Plotted."))
    page.set_viewport_size(NARROW)
    web.screenshot("responses-tools-390")

    # Deleting it removes it from the list and from the server.
    page.click(f'#conv-list li[data-id="{conversation}"] .conv-delete')
    expect(page.locator(f'#conv-list [data-id="{conversation}"]')).to_have_count(0)
    expect(page.locator("#resp-items > li")).to_have_count(0)
    gone = httpx.get(
        f"{web.origin}/v1/conversations/{conversation}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert gone.status_code == 404
    web.assert_clean()


def test_a_failed_response_shows_its_error(web: Watched, key: str) -> None:
    page = responses_mode(web, key)
    fail = {"key": f"web-fail-{key[-8:]}", "times": 10, "status": 400}
    send(page, "Break. " + script(fail=fail, reply="never"))
    expect(page.locator("#resp-status")).to_have_text("failed")
    expect(page.locator("#resp-summary .bad")).to_contain_text("scripted failure 400")
    expect(page.locator(".toast.error")).to_contain_text("scripted failure 400")
    expect(page.locator("#resp-send")).to_be_enabled()
    expect(page.locator("#resp-items .msg.assistant")).to_have_count(0)
    web.assert_clean()
