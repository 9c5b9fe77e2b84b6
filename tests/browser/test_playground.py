"""The playground in a real browser: key entry, assistants, a streamed chat, tools, threads,
cancelling, against the session's server with the scripted chat backend."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import NARROW, Watched
from tests.conftest import ServerProcess


def script(**plan: Any) -> str:
    """A ``#script`` steering the scripted model's turn."""
    return "#script " + json.dumps(plan)


def connect(web: Watched, api_key: str) -> Page:
    """Open the server's front page (it redirects to the playground) and enter the key."""
    page = web.page
    page.goto(web.origin + "/")
    expect(page).to_have_url(web.origin + "/playground#assistants")
    page.fill("#api-key", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-status")).to_have_text("Connected")
    return page


def create_assistant(
    page: Page, name: str, *, tools: tuple[str, ...] = (), functions: str = ""
) -> str:
    """Fill the editor and create an assistant; return its id."""
    page.click("#asst-new")
    page.fill("#asst-name", name)
    page.fill("#asst-model", "gpt-4o")
    page.fill("#asst-instructions", "Be brief.")
    for tool in tools:
        page.check({"code_interpreter": "#tool-ci", "file_search": "#tool-fs"}[tool])
    if functions:
        page.fill("#asst-functions", functions)
    page.click("#asst-save")
    expect(page.locator("#asst-id")).to_have_text(re.compile(r"^asst_\w+$"))
    return page.inner_text("#asst-id")


def send(page: Page, text: str) -> None:
    """Type a message and send it with the keyboard (Ctrl+Enter)."""
    page.fill("#composer-text", text)
    page.focus("#composer-text")
    page.keyboard.press("Control+Enter")


def last_assistant(page: Page) -> Any:
    return page.locator("#messages .msg.assistant").last


def test_key_assistant_and_streamed_chat(web: Watched, key: str) -> None:
    page = connect(web, key)
    asst_id = create_assistant(page, "Streamer")
    expect(page.locator(f'#asst-list [data-id="{asst_id}"]')).to_contain_text("Streamer")
    web.screenshot("assistants-1280")

    page.click("#asst-chat")
    expect(page.locator("#view-chat")).to_be_visible()
    expect(page.locator("#chat-assistant")).to_have_value(asst_id)
    words = "one two three four five six seven eight nine ten eleven twelve"
    send(page, "Count for me. " + script(reply=words, delay_ms=120))

    # Streamed: the answer is seen part-way (some words, not all) before it is complete.
    page.wait_for_function(
        """() => {
            const t = document.querySelector('#messages .msg.assistant .text');
            return t && t.textContent.includes('three') && !t.textContent.includes('twelve');
        }"""
    )
    expect(last_assistant(page).locator(".text")).to_have_text(words)
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#steps .step")).to_have_count(1)
    expect(page.locator("#run-summary")).to_contain_text("usage")
    expect(page.locator("#run-summary")).not_to_contain_text("null")

    page.click("#tab-code")
    expect(page.locator("#exchanges")).to_contain_text("client.beta.threads.runs.create")
    expect(page.locator("#exchanges")).to_contain_text("thread.message.delta")
    page.click("#tab-steps")
    web.screenshot("chat-1280")
    page.set_viewport_size(NARROW)
    web.screenshot("chat-390")
    page.click('.nav[data-view="assistants"]')
    web.screenshot("assistants-390")
    web.assert_clean()
    assert not [u for u in web.requests if key in u]


def test_pages_send_security_headers(server: ServerProcess) -> None:
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    for path in ("/playground", "/docs", "/playground/static/js/app.js"):
        response = httpx.get(server.base_url + path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    root = httpx.get(server.base_url + "/")
    assert root.status_code == 307
    assert root.headers["location"] == "/playground"
    missing = httpx.get(server.base_url + "/playground/static/../router.py")
    assert missing.status_code == 404
    assert httpx.get(server.base_url + "/playground/static/index.html").status_code == 404
