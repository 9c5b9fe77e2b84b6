"""A scripted, OpenAI-compatible chat-completions server for tests and benchmarks.

Real HTTP, real SSE streaming, real tool calls: assistd talks to it exactly as it talks to
OpenAI. What it answers is decided by the conversation itself, so concurrent tests never
interfere:

* The newest user message containing ``#script`` followed by a JSON object scripts the turn::

      #script {"reply": "Hello there", "delay_ms": 20}
      #script {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
               "after_tools": "It is {output0} in Paris."}
      #script {"fail": {"key": "k1", "times": 1, "status": 429}, "reply": "ok"}
      #script {"steps": [{"tool_calls": [...]}, {"tool_calls": [...]}, {"reply": "{output0}"}]}

  ``reply`` is streamed word by word (each word a delta, ``delay_ms`` apart). When the last
  message is a tool result, ``after_tools`` is streamed instead, with ``{output0}``,
  ``{output1}``… replaced by the submitted outputs. ``fail`` answers the first ``times``
  requests carrying ``key`` with ``status`` (429 has ``retry-after-ms: 10``). ``first_delay_ms``
  waits before the first chunk. ``steps`` scripts several tool rounds in one run: step *n* answers
  after *n* rounds of tool calls since the last user message. ``error_after`` ends the stream
  after that many words with an ``{"error": …}`` event (CRLF-framed, as some servers send).
* Streams that end badly (the HTTP response itself ends cleanly, without ``finish_reason``):
  ``cut_after`` ends it after that many pieces (words, then each tool call's two halves of
  arguments); ``empty`` sends no event at all; ``done_only`` sends only ``data: [DONE]``.
  ``empty`` and ``done_only`` are ``true`` (every request) or ``{"key": …, "times": n}`` (the
  first ``n`` requests carrying ``key``, as ``fail``). ``finish_reason`` replaces the finish
  reason (``"content_filter"``, as Azure OpenAI ends a filtered answer). ``reasoning`` streams
  that text as ``reasoning_content`` first (as vLLM and DeepSeek send it). ``no_usage`` leaves
  out the usage (of a whole answer, and of a stream that asked for it), as some servers do.
* Without a script the model answers ``You said: <last user text>``.

Every request is recorded (``server.requests``) so tests can assert what assistd sent.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCRIPT = re.compile(r"#script\s*(\{.*\})", re.S)


def script(**plan: Any) -> str:
    """The ``#script`` directive (a user message, or part of one) that scripts a turn."""
    return "#script " + json.dumps(plan, ensure_ascii=False)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def _script(messages: list[dict[str, Any]]) -> dict[str, Any]:
    for message in reversed(messages):
        if message.get("role") == "user":
            match = SCRIPT.search(_text(message.get("content")))
            if match:
                parsed: dict[str, Any] = json.loads(match.group(1))
                return parsed
    return {}


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [""]


class ScriptedChat:
    """The server's state: recorded requests and failure counters."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        """Per request: path, query string and auth headers (Authorization / api-key)."""
        self.failures: dict[str, int] = {}
        self.rules: list[tuple[str, dict[str, Any]]] = []
        """(text, script): a script for conversations whose last user message contains
        ``text`` and no ``#script`` (for programs that cannot carry one)."""
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.completions, methods=["POST"]),
                # Azure OpenAI's shape: the deployment in the path, the version in the query.
                Route(
                    "/openai/deployments/{deployment}/chat/completions",
                    self.completions,
                    methods=["POST"],
                ),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/health", lambda r: JSONResponse({"ok": True})),
            ]
        )

    def _rule(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        users = [m for m in messages if m.get("role") == "user"]
        text = _text(users[-1].get("content")) if users else ""
        for needle, script in list(self.rules):
            if needle in text:
                return script
        return {}

    async def models(self, request: Request) -> Response:
        model = {
            "id": "scripted-gpt",
            "object": "model",
            "created": 1700000000,
            "owned_by": "tests",
        }
        return JSONResponse({"object": "list", "data": [model]})

    async def embeddings(self, request: Request) -> Response:
        """Vectors of ``dimensions`` (default 8) floats, each from the text's digest: the same
        text always gets the same vector. Only ``text-embedding-3-*`` models are served."""
        body = await request.json()
        if not str(body.get("model", "")).startswith("text-embedding-3"):
            error = {"message": "no such model", "type": "invalid_request_error", "code": None}
            return JSONResponse({"error": error}, status_code=404)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = int(body.get("dimensions") or 8)
        data = []
        for i, text in enumerate(inputs):
            seed = hashlib.sha256(str(text).encode()).digest()
            vector = [(seed[j % 32] - 127.5) / 127.5 for j in range(size)]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return JSONResponse(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.requests.append(body)
            self.calls.append(
                {
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "authorization": request.headers.get("authorization"),
                    "api-key": request.headers.get("api-key"),
                    "model": body.get("model"),
                }
            )
        messages = body.get("messages", [])
        script = _script(messages) or self._rule(messages)
        fail = script.get("fail")
        if fail:
            with self.lock:
                seen = self.failures.get(fail["key"], 0)
                self.failures[fail["key"]] = seen + 1
            if seen < int(fail.get("times", 1)):
                status = int(fail.get("status", 500))
                return JSONResponse(
                    {
                        "error": {
                            "message": f"scripted failure {status}",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                    status_code=status,
                    headers={"retry-after-ms": "10"},
                )
        plan = self._plan(body, messages, script)
        if not body.get("stream"):
            return JSONResponse(self._whole(body, plan))
        if self._faulty(script.get("empty")):
            return _EventStream(_pieces([]))
        if self._faulty(script.get("done_only")):
            return _EventStream(_pieces([b"data: [DONE]\n\n"]))
        return _EventStream(self._stream(body, plan))

    def _faulty(self, fault: Any) -> bool:
        """Whether a fault option (``true``, or ``{"key", "times"}``) applies to this request."""
        if not isinstance(fault, dict):
            return bool(fault)
        with self.lock:
            seen = self.failures.get(fault["key"], 0)
            self.failures[fault["key"]] = seen + 1
        return seen < int(fault.get("times", 1))

    def _plan(
        self, body: dict[str, Any], messages: list[dict[str, Any]], script: dict[str, Any]
    ) -> dict[str, Any]:
        last = messages[-1] if messages else {}
        if "steps" in script:
            script = self._step(messages, script["steps"])
            if last.get("role") == "tool" and "tool_calls" in script:
                last = {}  # this step calls tools again instead of answering
        tool_calls = script.get("tool_calls")
        if last.get("role") == "tool":
            outputs: list[str] = []
            for message in reversed(messages):
                if message.get("role") != "tool":
                    break
                outputs.insert(0, _text(message.get("content")))
            reply = script.get("after_tools", "Tool results: {outputs}")
            for i, out in enumerate(outputs):
                reply = reply.replace("{output" + str(i) + "}", out)
            reply = reply.replace("{outputs}", ", ".join(outputs))
            tool_calls = None
        elif tool_calls:
            reply = script.get("reply_before_tools", "")
        elif "reply" in script:
            reply = script["reply"]
        else:
            users = [m for m in messages if m.get("role") == "user"]
            reply = "You said: " + (_text(users[-1].get("content")) if users else "")
        words = _words(reply) if reply else []
        finish = script.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if cap is not None and not tool_calls and len(words) > int(cap):
            words = words[: int(cap)]
            finish = "length"
        prompt_tokens = sum(len(json.dumps(m)) for m in messages) // 4
        return {
            "words": words,
            "tool_calls": tool_calls or [],
            "finish": finish,
            "delay": float(script.get("delay_ms", 0)) / 1000,
            "first_delay": float(script.get("first_delay_ms", 0)) / 1000,
            "error_after": script.get("error_after"),
            "cut_after": script.get("cut_after"),
            "no_usage": bool(script.get("no_usage")),
            "reasoning": _words(str(script["reasoning"])) if script.get("reasoning") else [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words) + 10 * len(tool_calls or []),
                "total_tokens": prompt_tokens + len(words) + 10 * len(tool_calls or []),
            },
        }

    @staticmethod
    def _step(messages: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
        """The step of a multi-turn script: one per tool round since the last user message.

        A step is ``{"tool_calls": [...]}`` or ``{"reply": "..."}``; a reply may use
        ``{output0}``… for the outputs of the tool round before it."""
        rounds = 0
        for message in reversed(messages):
            if message.get("role") == "user":
                break
            if message.get("role") == "assistant" and message.get("tool_calls"):
                rounds += 1
        step = dict(steps[min(rounds, len(steps) - 1)])
        if "reply" in step:
            step.setdefault("after_tools", step["reply"])
        return step

    def _whole(self, body: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan["words"])}
        if plan["tool_calls"]:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": json.dumps(c.get("arguments", {})),
                    },
                }
                for c in plan["tool_calls"]
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": plan["finish"]}],
            **({} if plan["no_usage"] else {"usage": plan["usage"]}),
        }

    async def _stream(self, body: dict[str, Any], plan: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        if plan["first_delay"]:
            await asyncio.sleep(plan["first_delay"])
        yield chunk({"role": "assistant", "content": ""})
        for word in plan["reasoning"]:
            yield chunk({"reasoning_content": word})
        cut = plan["cut_after"]
        for n, word in enumerate(plan["words"]):
            if n == cut:
                return  # the response ends here: no finish_reason, no [DONE]
            if n == plan["error_after"]:
                # What OpenAI-compatible servers send when generation fails mid-stream.
                error = {"message": "scripted stream error", "type": "server_error", "code": None}
                yield f"data: {json.dumps({'error': error})}\r\n\r\n".encode()
                return
            if plan["delay"]:
                await asyncio.sleep(plan["delay"])
            yield chunk({"content": word})
        for i, call in enumerate(plan["tool_calls"]):
            args = json.dumps(call.get("arguments", {}))
            half = len(args) // 2
            if cut is not None and cut <= len(plan["words"]) + 2 * i:
                return
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "function",
                            "function": {"name": call["name"], "arguments": args[:half]},
                        }
                    ]
                }
            )
            if plan["delay"]:
                await asyncio.sleep(plan["delay"])
            if cut is not None and cut <= len(plan["words"]) + 2 * i + 1:
                return  # mid arguments
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
        if cut is not None and cut <= len(plan["words"]) + 2 * len(plan["tool_calls"]):
            return
        yield chunk({}, plan["finish"])
        if (body.get("stream_options") or {}).get("include_usage") and not plan["no_usage"]:
            data = {**base, "choices": [], "usage": plan["usage"]}
            yield f"data: {json.dumps(data)}\n\n".encode()
        yield b"data: [DONE]\n\n"


async def _pieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


class _EventStream(Response):
    """A server-sent event stream written straight to the connection. Starlette's
    ``StreamingResponse`` also watches for the client going away, in a task group of its
    own per response: a fifth of this server's CPU per stream (0.85 against 0.68 ms for
    ten words), which the run benchmark's burst (500 streams at once, on the two CPUs the
    server under test uses) pays. Nobody watches for a client that goes away: the scripted
    stream runs to its end (uvicorn drops writes to a closed connection)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        # Not Response.__init__: with no body it would announce content-length: 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        self.chunks = chunks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for piece in self.chunks:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class ScriptedChatServer:
    """Runs ``ScriptedChat`` with uvicorn in a background thread."""

    def __init__(self, port: int) -> None:
        self.state = ScriptedChat()
        self.port = port
        config = uvicorn.Config(
            self.state.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received so far."""
        return self.state.requests

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Path, query and auth headers of every request so far."""
        return self.state.calls

    def start(self) -> ScriptedChatServer:
        """Start and wait until it accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted chat server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server."""
        self.server.should_exit = True
        self.thread.join(5)


def main() -> None:
    """``python tests/support/scripted_chat.py --port 9000``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(ScriptedChat().app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
