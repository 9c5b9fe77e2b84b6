"""HTTP: ``/containers`` and their ``/files``."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from assistd.containers import service
from assistd.containers.schemas import (
    ContainerCreate,
    ContainerFileCreate,
    ContainerFileObject,
    ContainerObject,
)
from assistd.core.errors import InvalidRequestError, PayloadTooLargeError
from assistd.core.schemas import Deleted, ListPage, page_of
from assistd.files.storage import FileStorage
from assistd.projects.auth import ProjectDep
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep

router = APIRouter(tags=["containers"])

# Multipart framing around the file, as for /files.
_FORM_OVERHEAD = 64 * 1024


def _storage(request: Request) -> FileStorage:
    storage: FileStorage = request.app.state.storage
    return storage


@router.post("/containers")
async def create_container(
    body: ContainerCreate, request: Request, session: SessionDep, project: ProjectDep
) -> ContainerObject:
    """Create a container, with copies of ``file_ids`` under /mnt/data."""
    return service.to_wire(await service.create(session, _storage(request), project, body))


@router.get("/containers")
async def list_containers(
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
    name: Annotated[str | None, Query()] = None,
) -> ListPage[ContainerObject]:
    """List containers, newest first unless ``order=asc``."""
    rows, has_more = await service.list_containers(session, project, params, name)
    return ListPage[ContainerObject](**page_of([service.to_wire(r) for r in rows], has_more))


@router.get("/containers/{container_id}")
async def retrieve_container(
    container_id: str, session: ReadSessionDep, project: ProjectDep
) -> ContainerObject:
    """Retrieve a container."""
    return service.to_wire(await service.get(session, project, container_id))


@router.delete("/containers/{container_id}")
async def delete_container(
    container_id: str,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
    background: BackgroundTasks,
) -> Deleted:
    """Delete a container, its files and its sandbox session."""
    keys = await service.delete_container(session, project, container_id)
    storage = _storage(request)
    for key in keys:
        background.add_task(storage.delete, key)
    return Deleted(id=container_id, object="container.deleted")


async def _json_file_id(request: Request) -> str:
    raw = await request.body()
    try:
        return ContainerFileCreate.model_validate_json(raw or b"{}").file_id
    except ValidationError as exc:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors, body=body) from None


@router.post("/containers/{container_id}/files")
async def create_container_file(
    container_id: str, request: Request, session: SessionDep, project: ProjectDep
) -> ContainerFileObject:
    """Add a file: a multipart ``file`` upload, or JSON ``{"file_id": …}`` to copy one."""
    storage = _storage(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        file_id = await _json_file_id(request)
        row = await service.add_copy(session, storage, project, container_id, file_id)
        return service.file_to_wire(row)
    max_bytes: int = request.app.state.settings.limits.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes + _FORM_OVERHEAD:
        raise PayloadTooLargeError(
            f"File is too large. The maximum file size is {max_bytes} bytes.",
            param="file",
            code="file_too_large",
        )
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        row = await service.add_upload(
            session,
            storage,
            project,
            container_id,
            name=upload.filename or "upload",
            source=upload.file,
            max_bytes=max_bytes,
        )
    return service.file_to_wire(row)


@router.get("/containers/{container_id}/files")
async def list_container_files(
    container_id: str, session: ReadSessionDep, project: ProjectDep, params: ListParamsDep
) -> ListPage[ContainerFileObject]:
    """List a container's files."""
    rows, has_more = await service.list_files(session, project, container_id, params)
    return ListPage[ContainerFileObject](
        **page_of([service.file_to_wire(r) for r in rows], has_more)
    )


@router.get("/containers/{container_id}/files/{file_id}")
async def retrieve_container_file(
    container_id: str, file_id: str, session: ReadSessionDep, project: ProjectDep
) -> ContainerFileObject:
    """Retrieve a container file's metadata."""
    return service.file_to_wire(await service.get_file(session, project, container_id, file_id))


@router.delete("/containers/{container_id}/files/{file_id}")
async def delete_container_file(
    container_id: str,
    file_id: str,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
    background: BackgroundTasks,
) -> Deleted:
    """Delete a container file; its bytes go once the deletion has committed."""
    key = await service.delete_file(session, project, container_id, file_id)
    background.add_task(_storage(request).delete, key)
    return Deleted(id=file_id, object="container.file.deleted")


@router.get("/containers/{container_id}/files/{file_id}/content")
async def download_container_file(
    container_id: str, file_id: str, request: Request, session: ReadSessionDep, project: ProjectDep
) -> StreamingResponse:
    """The file's bytes."""
    row = await service.get_file(session, project, container_id, file_id)
    return StreamingResponse(
        _storage(request).stream(row.storage_key),
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.bytes),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(service.filename(row))}",
        },
    )
