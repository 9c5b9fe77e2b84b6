"""ORM rows → wire objects for runs and steps (shared by the API and the worker)."""

from __future__ import annotations

import copy
from typing import Any

from assistd.models import Run, RunStep
from assistd.runs.schemas import FILE_SEARCH_CONTENT, RunObject, RunStepObject


def run_to_wire(r: Run) -> RunObject:
    """The API shape of a run."""
    return RunObject(
        id=r.id,
        created_at=r.created_at,
        assistant_id=r.assistant_id,
        thread_id=r.thread_id,
        status=r.status,
        started_at=r.started_at,
        expires_at=r.expires_at,
        cancelled_at=r.cancelled_at,
        failed_at=r.failed_at,
        completed_at=r.completed_at,
        required_action=r.required_action,
        last_error=r.last_error,
        incomplete_details=r.incomplete_details,
        model=r.model,
        instructions=r.instructions,
        tools=r.tools,
        metadata=r.metadata_,
        usage=r.usage,
        temperature=1.0 if r.temperature is None else r.temperature,
        top_p=1.0 if r.top_p is None else r.top_p,
        max_prompt_tokens=r.max_prompt_tokens,
        max_completion_tokens=r.max_completion_tokens,
        truncation_strategy=r.truncation_strategy,
        tool_choice=r.tool_choice,
        parallel_tool_calls=r.parallel_tool_calls,
        response_format=r.response_format,
    )


def run_data(r: Run) -> dict[str, Any]:
    """The run as a JSON-ready dict (stream event payloads)."""
    return run_to_wire(r).model_dump(mode="json")


def _public_details(details: dict[str, Any], with_content: bool) -> dict[str, Any]:
    """Step details without internal keys, and file_search result contents only on request."""
    if details.get("type") != "tool_calls":
        return details
    out = copy.deepcopy(details)
    for call in out.get("tool_calls", []):
        for key in [k for k in call if k.startswith("_")]:
            call.pop(key)
        if call.get("type") == "file_search" and not with_content:
            for result in call.get("file_search", {}).get("results", []) or []:
                result.pop("content", None)
    return out


def step_to_wire(s: RunStep, include: list[str] | None = None) -> RunStepObject:
    """The API shape of a step; file_search result contents only when asked for."""
    details = _public_details(s.step_details, FILE_SEARCH_CONTENT in (include or []))
    return RunStepObject(
        id=s.id,
        created_at=s.created_at,
        run_id=s.run_id,
        assistant_id=s.assistant_id,
        thread_id=s.thread_id,
        type=s.type,
        status=s.status,
        cancelled_at=s.cancelled_at,
        completed_at=s.completed_at,
        expired_at=s.expired_at,
        failed_at=s.failed_at,
        last_error=s.last_error,
        step_details=details,
        # The turn's usage is recorded as soon as it is known, but shown once the step ends.
        usage=None if s.status == "in_progress" else s.usage,
        metadata=s.metadata_,
    )


def step_data(s: RunStep, include: list[str] | None = None) -> dict[str, Any]:
    """The step as a JSON-ready dict."""
    return step_to_wire(s, include).model_dump(mode="json")


# ---- stream deltas and tool calls (the parts of steps and messages a run streams) ----------


def step_delta(step_id: str, call: dict[str, Any]) -> dict[str, Any]:
    """A ``thread.run.step.delta`` carrying one tool call's delta."""
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
    }


def call_started(index: int, call_id: str, kind: str, name: str, arguments: str) -> dict[str, Any]:
    """The delta announcing a tool call (a function's with the arguments written so far)."""
    if kind == "function":
        body: dict[str, Any] = {"name": name, "arguments": arguments, "output": None}
    elif kind == "code_interpreter":
        body = {"input": "", "outputs": []}
    else:
        body = {}
    return {"index": index, "id": call_id, "type": kind, kind: body}


def call_delta(index: int, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A delta of a tool call already announced (``body``: what the call's object gained)."""
    return {"index": index, "type": kind, kind: body}


def code_outputs(logs: str | None, images: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """A code_interpreter call's outputs: its logs (if shown), then its images."""
    outputs: list[dict[str, Any]] = [] if logs is None else [{"type": "logs", "logs": logs}]
    return outputs + [{"type": "image", "image": {"file_id": f}} for f in images]


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A function call as its step stores it (the client submits the output)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments, "output": None},
    }


def code_interpreter_call(
    call_id: str, code: str, outputs: list[dict[str, Any]], model_output: str, files: dict[str, str]
) -> dict[str, Any]:
    """A code_interpreter call as its step stores it; the underscored keys (what the model
    saw, the files written) are kept for later turns and stripped from the wire."""
    return {
        "id": call_id,
        "type": "code_interpreter",
        "code_interpreter": {"input": code, "outputs": outputs},
        "_output": model_output,
        "_files": files,
    }


def search_result(file_id: str, file_name: str, score: float, text: str) -> dict[str, Any]:
    """One file_search result (its content shown only when the client asks for it)."""
    return {
        "file_id": file_id,
        "file_name": file_name,
        "score": score,
        "content": [{"type": "text", "text": text}],
    }


def file_search_call(
    call_id: str,
    ranker: str,
    score_threshold: float,
    results: list[dict[str, Any]],
    queries: list[str],
) -> dict[str, Any]:
    """A file_search call as its step stores it (the queries kept to rebuild the prompt;
    no ranker: the call was not run)."""
    ranking = {"ranker": ranker, "score_threshold": score_threshold} if ranker else {}
    return {
        "id": call_id,
        "type": "file_search",
        "file_search": {"ranking_options": ranking, "results": results},
        "_queries": queries,
    }


# ---- messages and steps as a run writes them -----------------------------------------------


def message_delta(message_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``thread.message.delta`` carrying content parts (each with its ``index``)."""
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": parts}}


def image_part(file_id: str) -> dict[str, Any]:
    """An ``image_file`` content part (a plot code_interpreter showed, or an image it wrote
    that the answer links)."""
    return {"type": "image_file", "image_file": {"file_id": file_id, "detail": "auto"}}


def text_part(value: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``text`` content part."""
    return {"type": "text", "text": {"value": value, "annotations": annotations or []}}


def refusal_part(refusal: str) -> dict[str, Any]:
    """A ``refusal`` content part."""
    return {"type": "refusal", "refusal": refusal}


def message_content(
    images: list[str],
    text: str,
    refusal: str,
    annotations: list[dict[str, Any]] | None = None,
    linked: list[str] | None = None,
) -> list[dict[str, Any]]:
    """An assistant message's content: the images shown before it, its text (always, unless
    it is only a refusal), its refusal, then the images its text links (after, so the
    indices streamed for the text stay right)."""
    parts = [image_part(f) for f in images]
    if text or not refusal:
        parts.append(text_part(text, annotations))
    if refusal:
        parts.append(refusal_part(refusal))
    return parts + [image_part(f) for f in linked or []]


def file_citation(text: str, start: int, end: int, file_id: str, quote: str) -> dict[str, Any]:
    """A ``file_citation`` annotation (a search result's marker the model copied)."""
    return {
        "type": "file_citation",
        "text": text,
        "start_index": start,
        "end_index": end,
        "file_citation": {"file_id": file_id, "quote": quote},
    }


def file_path(text: str, start: int, end: int, file_id: str) -> dict[str, Any]:
    """A ``file_path`` annotation (a link to a file the code wrote)."""
    return {
        "type": "file_path",
        "text": text,
        "start_index": start,
        "end_index": end,
        "file_path": {"file_id": file_id},
    }


def message_creation(message_id: str) -> dict[str, Any]:
    """The details of a step that writes a message."""
    return {"type": "message_creation", "message_creation": {"message_id": message_id}}


def tool_calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The details of a step that calls tools."""
    return {"type": "tool_calls", "tool_calls": calls}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """Token usage as runs and steps show it."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def submit_tool_outputs(calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A run's ``required_action``: the ``(id, name, arguments)`` function calls to run."""
    return {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in calls
            ]
        },
    }
