"""HTTP: ``/chat/completions`` (and Azure's ``/deployments/{deployment}/chat/completions``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from assistd.chat import service
from assistd.chat.schemas import ChatCompletionRequest
from assistd.llm.chat import BackendRouter
from assistd.projects.auth import ProjectDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["chat"], route_class=ApiRoute)


async def _answer(
    request: Request, body: dict[str, Any], project: str
) -> JSONResponse | StreamingResponse:
    backends: BackendRouter = request.app.state.chat_router
    counted = project if request.app.state.settings.metrics.per_project else None
    if body.get("stream"):
        events = await service.stream(backends, body, counted)
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    return JSONResponse(await service.complete(backends, body, counted))


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, project: ProjectDep
) -> JSONResponse | StreamingResponse:
    """A chat completion from the backend serving ``model``, streamed or whole."""
    return await _answer(request, body.model_dump(exclude_unset=True), project)


@router.post("/deployments/{deployment}/chat/completions", response_model=None)
async def create_deployment_chat_completion(
    deployment: str, body: ChatCompletionRequest, request: Request, project: ProjectDep
) -> JSONResponse | StreamingResponse:
    """Azure OpenAI's form: the deployment in the path names the model."""
    body_dict = {**body.model_dump(exclude_unset=True), "model": deployment}
    return await _answer(request, body_dict, project)
