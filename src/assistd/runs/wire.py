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
