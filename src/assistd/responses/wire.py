"""The response object: its request echoed, its run's state, its output items."""

from __future__ import annotations

from typing import Any

from assistd.models import StoredResponse
from assistd.responses.items import public

STATUS = {
    "queued": "queued",
    "in_progress": "in_progress",
    "cancelling": "in_progress",
    "requires_action": "in_progress",
    "completed": "completed",
    "incomplete": "incomplete",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "failed",
}
"""A run's status → its response's."""

INCOMPLETE_REASONS = {
    "max_completion_tokens": "max_output_tokens",
    "max_prompt_tokens": "max_output_tokens",
}


def usage(run_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's usage in the Responses API's words."""
    if not run_usage:
        return None
    prompt, completion = (
        int(run_usage.get("prompt_tokens", 0)),
        int(run_usage.get("completion_tokens", 0)),
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _error(status: str, last_error: dict[str, Any] | None) -> dict[str, Any] | None:
    if status == "expired":
        return {"code": "server_error", "message": "The response expired before it finished."}
    if status != "failed" or not last_error:
        return None
    return {"code": last_error.get("code") or "server_error", "message": last_error.get("message")}


def response_object(
    row: StoredResponse,
    run: dict[str, Any],
    output: list[dict[str, Any]],
    include: list[str] | None = None,
) -> dict[str, Any]:
    """The response as the API shows it; ``run``: its run's wire fields (``status``,
    ``usage``, ``last_error``, ``incomplete_details``, ``completed_at``)."""
    params = row.params
    run_status = str(run.get("status") or "queued")
    status = STATUS.get(run_status, "in_progress")
    incomplete = run.get("incomplete_details") if status == "incomplete" else None
    if incomplete:
        reason = incomplete.get("reason")
        incomplete = {"reason": INCOMPLETE_REASONS.get(reason, reason)}
    shown = include if include is not None else params.get("include") or []
    return {
        "id": row.id,
        "object": "response",
        "created_at": row.created_at,
        "status": status,
        "background": row.background,
        "completed_at": run.get("completed_at") if status == "completed" else None,
        "error": _error(run_status, run.get("last_error")),
        "incomplete_details": incomplete,
        "instructions": params.get("instructions"),
        "max_output_tokens": params.get("max_output_tokens"),
        "max_tool_calls": params.get("max_tool_calls"),
        "model": params["model"],
        "output": [public(item, shown) for item in output],
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "previous_response_id": row.previous_response_id,
        "conversation": {"id": row.conversation_id} if row.conversation_id else None,
        "reasoning": params.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": params.get("safety_identifier"),
        "prompt_cache_key": params.get("prompt_cache_key"),
        "service_tier": params.get("service_tier") or "default",
        "store": row.store,
        "temperature": params.get("temperature", 1.0),
        "text": params.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": params.get("tool_choice", "auto"),
        "tools": params.get("tools") or [],
        "top_logprobs": params.get("top_logprobs", 0),
        "top_p": params.get("top_p", 1.0),
        "truncation": params.get("truncation", "disabled"),
        "usage": usage(run.get("usage")) if status not in ("queued", "in_progress") else None,
        "user": params.get("user"),
        "metadata": params.get("metadata") or {},
    }
