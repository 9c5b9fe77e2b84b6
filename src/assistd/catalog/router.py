"""HTTP: ``/models``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from assistd.catalog.schemas import ModelList, ModelObject
from assistd.catalog.service import Catalog
from assistd.projects.auth import ProjectDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["models"], route_class=ApiRoute)


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


@router.get("/models")
async def list_models(request: Request, project: ProjectDep) -> ModelList:
    """The models this server serves."""
    return ModelList(data=await _catalog(request).models())


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, project: ProjectDep) -> ModelObject:
    """One model (ids may hold ``/`` and ``:``, as ``local:wordllama``)."""
    return await _catalog(request).get(model_id)
