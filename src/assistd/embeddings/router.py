"""HTTP: ``/embeddings`` (and Azure's ``/deployments/{deployment}/embeddings``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from assistd.embeddings import service
from assistd.embeddings.schemas import CreateEmbedding, EmbeddingList
from assistd.projects.auth import ProjectDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["embeddings"], route_class=ApiRoute)


def _models(request: Request) -> service.EmbeddingModels:
    models: service.EmbeddingModels = request.app.state.embedding_models
    return models


@router.post("/embeddings")
async def create_embedding(
    body: CreateEmbedding, request: Request, project: ProjectDep
) -> EmbeddingList:
    """Embeddings of a string, strings or token arrays."""
    return await service.create(_models(request), body)


@router.post("/deployments/{deployment}/embeddings")
async def create_deployment_embedding(
    deployment: str, body: CreateEmbedding, request: Request, project: ProjectDep
) -> EmbeddingList:
    """Azure OpenAI's form: the deployment in the path names the model."""
    return await service.create(_models(request), body.model_copy(update={"model": deployment}))
