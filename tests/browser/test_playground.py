"""The playground in a real browser: key entry, assistants, a streamed chat, tools, threads,
cancelling, against the session's server with the scripted chat backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import FilePayload, Page, expect

from tests.browser.conftest import NARROW, WIDE, Watched
from tests.conftest import ServerProcess
from tests.support.scripted_chat import script


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
    # Only the packaged assets answer: no path reaches the file system.
    for name in ("%2e%2e/router.py", "..%2frouter.py", "%2e%2e/%2e%2e/app.py"):
        missing = httpx.get(f"{server.base_url}/playground/static/{name}")
        assert missing.status_code == 404, name
        assert missing.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(server.base_url + "/playground/static/index.html").status_code == 404


KEEPER = (
    "# The lighthouse keeper\n\n"
    "The keeper of the northern light rewinds the great clock every forty-one days, "
    "always at dawn, with a brass key kept in the lantern room.\n"
)
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "xs = list(range(10))\n"
    "plt.plot(xs, [x * x for x in xs])\n"
    "open('/mnt/data/points.csv', 'w').write('x,y\\n3,9\\n')\n"
    "plt.show()\n"
    "print('plotted')"
)


def test_vector_store_code_interpreter_and_citations(
    web: Watched, key: str, sandbox_image: str
) -> None:
    page = connect(web, key)

    # A vector store with one document, followed until its ingestion has completed.
    page.click('.nav[data-view="stores"]')
    page.fill("#store-name", "Manuals")
    page.click("#store-form button")
    expect(page.locator("#store-title")).to_have_text("Manuals")
    page.set_input_files(
        "#store-upload",
        files=[FilePayload(name="keeper.md", mimeType="text/markdown", buffer=KEEPER.encode())],
    )
    expect(page.locator('#uploads li[data-name="keeper.md"] progress')).to_have_attribute(
        "value", "1"
    )
    row = page.locator("#store-files tr").first
    expect(row).to_contain_text("keeper.md")
    expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator("#store-counts")).to_contain_text("1 completed")
    web.screenshot("stores-1280")
    store_id = page.get_attribute('#store-list [aria-current="true"]', "data-id")
    assert (store_id or "").startswith("vs_")

    # An assistant with code_interpreter and file_search over that store.
    page.click('.nav[data-view="assistants"]')
    asst_id = create_assistant(page, "Analyst", tools=("code_interpreter", "file_search"))
    page.select_option("#asst-stores", value=store_id)
    with page.expect_response(f"**/v1/assistants/{asst_id}") as saved:
        page.click("#asst-save")
    assert saved.value.json()["tool_resources"]["file_search"]["vector_store_ids"] == [store_id]
    page.click("#asst-chat")

    # A plot: the code appears, then its output image, then the streamed answer.
    steps = [
        {"tool_calls": [{"name": "code_interpreter", "arguments": {"code": PLOT}}]},
        {
            "reply": "Here is the plot of the squares, and the points: "
            "[the points](sandbox:/mnt/data/points.csv) as a file.",
            "delay_ms": 40,
        },
    ]
    send(page, "Plot the squares. " + script(steps=steps))
    tool = page.locator("#messages .tool.code_interpreter").first
    expect(tool.locator("pre.input")).to_contain_text("plt.plot(xs, [x * x for x in xs])")
    expect(tool.locator("pre.logs")).to_contain_text("plotted", timeout=60_000)
    answer = last_assistant(page)
    expect(answer.locator(".text").first).to_contain_text("Here is the plot")
    expect(page.locator("#run-status")).to_have_text("completed")
    image = answer.locator("img.generated")
    expect(image).to_have_attribute("src", re.compile("^blob:"))
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 100
    link = answer.locator("a.download")
    expect(link).to_have_attribute("href", re.compile("^blob:"))
    expect(link).to_have_attribute("download", "points.csv")
    expect(answer.locator(".text").first).to_have_text(
        "Here is the plot of the squares, and the points: ⬇ the points as a file."
    )
    page.set_viewport_size({"width": 1280, "height": 1080})
    tool.scroll_into_view_if_needed()
    web.screenshot("chat-plot-1280")
    page.set_viewport_size(WIDE)
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "points.csv"
    assert Path(download.value.path()).read_text() == "x,y\n3,9\n"
    expect(page.locator("#steps .step")).to_have_count(2)
    expect(page.locator("#steps")).to_contain_text("code_interpreter · 2 outputs")

    # A question on the document: the answer cites it with a quote and its file name.
    plan = script(
        tool_calls=[{"name": "file_search", "arguments": {"queries": ["clock rewinding"]}}],
        after_tools="Every forty-one days 【0:0†keeper.md】.",
    )
    send(page, "How often is the clock rewound? " + plan)
    citation = last_assistant(page).locator(".citation")
    expect(citation.locator(".source-file")).to_have_text("keeper.md")
    expect(citation.locator(".quote")).to_contain_text("rewinds the great clock every forty-one")
    expect(last_assistant(page).locator("sup.cite")).to_have_text("[1]")
    expect(page.locator("#messages .tool.file_search")).to_contain_text("results")
    web.screenshot("chat-tools-1280")
    page.set_viewport_size(NARROW)
    answer.scroll_into_view_if_needed()
    web.screenshot("chat-tools-390")
    page.click('.nav[data-view="stores"]')
    web.screenshot("stores-390")
    web.assert_clean()


WEATHER = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
)


def test_function_call_reload_and_cancel(web: Watched, key: str) -> None:
    page = connect(web, key)
    create_assistant(page, "Weather", functions=WEATHER)
    page.click("#asst-chat")

    # The pending call is shown; the user types its output and the run goes on.
    plan = script(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        after_tools="It is {output0} in Paris.",
    )
    send(page, "Weather in Paris? " + plan)
    pending = page.locator("form.pending")
    expect(pending).to_contain_text("get_weather")
    expect(pending).to_contain_text("Paris")
    expect(page.locator("#run-status")).to_have_text("requires_action")
    expect(page.locator(".fn-output")).to_be_focused()
    web.screenshot("function-call-1280")
    page.keyboard.type("sunny")
    page.click("form.pending button[type=submit]")
    expect(last_assistant(page).locator(".text")).to_have_text("It is sunny in Paris.")
    expect(page.locator("#run-status")).to_have_text("completed")
    thread_id = page.inner_text("#thread-title")
    assert thread_id.startswith("thread_")

    # After a reload the key and the thread are still known; reopening shows the thread.
    page.reload()
    expect(page.locator("#key-status")).to_have_text("Connected")
    expect(page.locator("#view-chat")).to_be_visible()
    page.click(f'#thread-list [data-id="{thread_id}"]')
    expect(page.locator("#messages .msg.user")).to_contain_text("Weather in Paris?")
    expect(page.locator("#messages .tool.function")).to_contain_text("sunny")
    expect(last_assistant(page).locator(".text")).to_have_text("It is sunny in Paris.")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#steps .step")).to_have_count(2)

    # Cancelling a run while its answer streams: it ends cancelled, the answer cut short.
    words = " ".join(f"w{i}" for i in range(60))
    send(page, "Talk slowly. " + script(reply=words, delay_ms=150))
    expect(last_assistant(page).locator(".text")).to_contain_text("w2 ")
    expect(page.locator("#run-cancel")).to_be_visible()
    page.click("#run-cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#run-cancel")).to_be_hidden()
    assert "w59" not in last_assistant(page).inner_text()
    web.assert_clean()


def test_docs_renders_openapi_with_local_assets_only(web: Watched, key: str) -> None:
    page = connect(web, key)
    page.goto(web.origin + "/docs")
    expect(page.locator("#api-title")).to_contain_text("assistd")
    op = page.locator("#op-get--v1-assistants")
    page.click('#toc a[href="#op-get--v1-assistants"]')
    expect(op.locator("table.params")).to_contain_text("limit")
    create = page.locator("#op-post--v1-assistants")
    create.locator("summary").click()
    expect(create).to_contain_text("instructions")
    expect(create.locator("textarea")).to_have_value(re.compile('"model"'))
    op.locator("form.tryit input[id$='query-limit']").fill("5")
    op.locator("form.tryit button[type=submit]").click()
    expect(op.locator("form.tryit pre")).to_have_attribute("data-status", "200")
    expect(op.locator("form.tryit pre")).to_contain_text('"object": "list"')
    web.screenshot("docs-1280")
    page.set_viewport_size(NARROW)
    web.screenshot("docs-390")
    assert any(url.endswith("/openapi.json") for url in web.requests)
    web.assert_clean()
    assert not [u for u in web.requests if key in u]
