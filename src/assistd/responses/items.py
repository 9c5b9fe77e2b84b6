"""Responses items from what a run stores, and items as chat messages.

A response's output is its run's messages and tool-call steps (the engine's storage); these
functions give them their Responses shape, one place for the stream, retrieval and the next
response's context.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from typing import Any

from assistd.core import ids

_MARKER_NAME = re.compile(r"【\d+:\d+†([^】]*)】")

RESULTS = "file_search_call.results"
OUTPUTS = "code_interpreter_call.outputs"


def item_id(prefix: str, call_id: str) -> str:
    """The item id of a tool call (stable: derived from the call's id)."""
    return prefix + call_id.removeprefix(ids.CALL)


def _annotation(note: dict[str, Any], container_id: str | None) -> dict[str, Any] | None:
    if note.get("type") == "file_citation":
        found = _MARKER_NAME.search(str(note.get("text") or ""))
        return {
            "type": "file_citation",
            "file_id": note["file_citation"]["file_id"],
            "filename": found.group(1) if found else "",
            "index": int(note["end_index"]),
        }
    if note.get("type") == "file_path":
        path = str(note.get("text") or "").removeprefix("sandbox:")
        return {
            "type": "container_file_citation",
            "container_id": container_id or "",
            "file_id": note["file_path"]["file_id"],
            "filename": posixpath.basename(path),
            "start_index": int(note["start_index"]),
            "end_index": int(note["end_index"]),
        }
    return None


def message_item(
    message_id: str, status: str, content: list[dict[str, Any]], container_id: str | None = None
) -> dict[str, Any]:
    """An assistant message (``content``: its parts as a thread message stores them; the
    images it shows are the code_interpreter call's outputs here)."""
    parts: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            notes = [_annotation(n, container_id) for n in part["text"].get("annotations") or []]
            parts.append(
                {
                    "type": "output_text",
                    "text": part["text"]["value"],
                    "annotations": [n for n in notes if n is not None],
                    "logprobs": [],
                }
            )
        elif part.get("type") == "refusal":
            parts.append({"type": "refusal", "refusal": part["refusal"]})
    return {
        "id": message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def call_item(call: dict[str, Any], status: str, container_id: str | None) -> dict[str, Any]:
    """A tool call as its step stores it (internal keys included), as an output item."""
    kind = call.get("type")
    if kind == "code_interpreter":
        body = call["code_interpreter"]
        outputs: list[dict[str, Any]] = []
        for out in body.get("outputs") or []:
            if out.get("type") == "logs":
                outputs.append({"type": "logs", "logs": out["logs"]})
            elif out.get("type") == "image":
                file_id = out["image"]["file_id"]
                url = (
                    f"/v1/containers/{container_id}/files/{file_id}/content"
                    if container_id and file_id.startswith(ids.CONTAINER_FILE)
                    else f"/v1/files/{file_id}/content"
                )
                outputs.append({"type": "image", "url": url})
        return {
            "id": item_id(ids.CODE_INTERPRETER_CALL_ITEM, call["id"]),
            "type": "code_interpreter_call",
            "status": status,
            "code": body.get("input") or "",
            "container_id": container_id or "",
            "outputs": outputs,
        }
    if kind == "file_search":
        results = [
            {
                "file_id": r["file_id"],
                "filename": r.get("file_name", ""),
                "score": r.get("score", 0.0),
                "text": "".join(p.get("text", "") for p in r.get("content") or []),
                "attributes": {},
            }
            for r in call["file_search"].get("results") or []
        ]
        return {
            "id": item_id(ids.FILE_SEARCH_CALL_ITEM, call["id"]),
            "type": "file_search_call",
            "status": status,
            "queries": list(call.get("_queries") or []),
            "results": results,
        }
    fn = call["function"]
    return {
        "id": item_id(ids.FUNCTION_CALL_ITEM, call["id"]),
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": fn["name"],
        "arguments": fn["arguments"],
    }


def public(item: dict[str, Any], include: list[str]) -> dict[str, Any]:
    """``item`` as the client sees it: tool results only when ``include`` asks for them."""
    if item.get("type") == "file_search_call" and RESULTS not in include:
        return {**item, "results": None}
    if item.get("type") == "code_interpreter_call" and OUTPUTS not in include:
        return {**item, "outputs": None}
    return item


def compaction_item(summary: str) -> dict[str, Any]:
    """A ``compaction`` item carrying ``summary`` (base64: opaque to clients, as OpenAI's
    encrypted content is, though not encrypted)."""
    content = base64.b64encode(summary.encode()).decode()
    return {
        "id": ids.new_id(ids.COMPACTION_ITEM),
        "type": "compaction",
        "encrypted_content": content,
        "created_by": "assistd",
    }


def compaction_text(item: dict[str, Any]) -> str:
    """The summary a ``compaction`` item carries ("" for content not made here)."""
    try:
        return base64.b64decode(str(item.get("encrypted_content") or "")).decode()
    except ValueError:
        return ""


# ---- items as chat messages ------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text") or p.get("refusal") or "")
        for p in content
        if p.get("type") in ("input_text", "output_text", "refusal")
    )


def _user_content(content: Any, images: dict[str, str], files: dict[str, str]) -> Any:
    """A user message's content: plain text, or parts with images and extracted files."""
    if isinstance(content, str):
        return content
    if all(p.get("type") == "input_text" for p in content):
        return _text(content)
    parts: list[dict[str, Any]] = []
    for p in content:
        kind = p.get("type")
        if kind == "input_text":
            parts.append({"type": "text", "text": p["text"]})
        elif kind == "input_image":
            url = p.get("image_url") or images.get(p.get("file_id") or "")
            if url:
                detail = p.get("detail") if p.get("detail") in ("low", "high") else "auto"
                parts.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
        elif kind == "input_file":
            text = files.get(p.get("file_id") or p.get("filename") or "")
            if text is not None:
                parts.append({"type": "text", "text": text})
    return parts


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _as_call(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """A call item as a chat tool call, with its result when the item carries it."""
    kind = item.get("type")
    if kind == "function_call":
        return _call(item["call_id"], item["name"], item.get("arguments") or ""), None
    call_id = str(item.get("id"))
    if kind == "code_interpreter_call":
        logs = "\n".join(
            o.get("logs", "") for o in item.get("outputs") or [] if o.get("type") == "logs"
        )
        arguments = json.dumps({"code": item.get("code") or ""})
        reply = logs or "(no output)"
        return _call(call_id, "code_interpreter", arguments), _tool(call_id, reply)
    if kind == "file_search_call":
        found = "\n\n".join(
            f"{r.get('filename', '')}: {r.get('text', '')}" for r in item.get("results") or []
        )
        arguments = json.dumps({"queries": item.get("queries") or []})
        return _call(call_id, "file_search", arguments), _tool(call_id, found or "No results.")
    return None


def _tool(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def chat_messages(
    items: list[dict[str, Any]],
    images: dict[str, str] | None = None,
    files: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Items in order as chat messages: consecutive calls share one assistant message, which
    the results of built-in calls follow; a function's output is a tool message where it is."""
    images, files = images or {}, files or {}
    out: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []

    def close() -> None:
        if calls:
            out.append({"role": "assistant", "content": None, "tool_calls": list(calls)})
            out.extend(replies)
        calls.clear()
        replies.clear()

    for item in items:
        kind = item.get("type", "message")
        as_call = _as_call(item)
        if as_call is not None:
            call, reply = as_call
            calls.append(call)
            if reply is not None:
                replies.append(reply)
            continue
        close()
        if kind == "compaction":
            summary = compaction_text(item)
            out.append(
                {"role": "system", "content": f"Summary of the earlier conversation:\n{summary}"}
            )
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output or [])
            out.append(_tool(item["call_id"], text))
        elif kind == "message":
            role = item.get("role", "user")
            content = item.get("content") or ""
            if role == "assistant":
                out.append({"role": "assistant", "content": _text(content)})
            elif role in ("system", "developer"):
                out.append({"role": "system", "content": _text(content)})
            else:
                out.append({"role": "user", "content": _user_content(content, images, files)})
    close()
    return out
