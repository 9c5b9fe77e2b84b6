"""HTTP: ``/uploads`` (create, add parts, complete, cancel)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from starlette.datastructures import UploadFile

from assistd.core import ids
from assistd.core.config import Settings
from assistd.core.errors import InvalidRequestError, PayloadTooLargeError
from assistd.files.storage import FileStorage
from assistd.projects.auth import ProjectDep
from assistd.uploads import service
from assistd.uploads.schemas import CompleteUpload, CreateUpload, UploadObject, UploadPartObject
from assistd.web.deps import SessionDep, request_transaction
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["uploads"], route_class=ApiRoute)

# Multipart framing around a part's bytes.
_FORM_OVERHEAD = 64 * 1024


def _storage(request: Request) -> FileStorage:
    storage: FileStorage = request.app.state.storage
    return storage


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _delete_all(storage: FileStorage, keys: list[str]) -> None:
    for key in keys:
        await storage.delete(key)


@router.post("/uploads")
async def create_upload(
    body: CreateUpload, request: Request, session: SessionDep, project: ProjectDep
) -> UploadObject:
    """Start an upload of a declared size; parts are added within the hour."""
    limit = _settings(request).limits.max_chunked_upload_bytes
    return service.to_wire(await service.create(session, project, body, limit))


@router.post("/uploads/{upload_id}/parts")
async def add_part(upload_id: str, request: Request, project: ProjectDep) -> UploadPartObject:
    """Add a part (multipart: ``data``). Its bytes go to storage chunk by chunk, outside any
    transaction; the part is recorded after."""
    max_part = _settings(request).limits.max_upload_part_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_part + _FORM_OVERHEAD:
        raise PayloadTooLargeError(
            f"Part is too large. The maximum part size is {max_part} bytes.",
            param="data",
            code="part_too_large",
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Invalid Content-Type header: expected 'multipart/form-data' with a 'data' field.",
            param="data",
            code="invalid_value",
        )
    async with request_transaction(request) as session:
        room = await service.room_for_part(session, project, upload_id)
    storage = _storage(request)
    part_id = ids.new_id(ids.UPLOAD_PART)
    key = service.part_key(project, upload_id, part_id)
    # The form parser spools the part to a temporary file past 1 MiB, never to memory.
    async with request.form(max_files=1, max_fields=4) as form:
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise InvalidRequestError(
                "Missing required parameter: 'data'.",
                param="data",
                code="missing_required_parameter",
            )
        size = await service.store_part(storage, key, data.file, room, max_part)
    try:
        async with request_transaction(request) as session:
            part = await service.record_part(session, project, upload_id, part_id, key, size)
    except BaseException:
        await storage.delete(key)
        raise
    return service.part_to_wire(part)


@router.post("/uploads/{upload_id}/complete")
async def complete_upload(
    upload_id: str,
    body: CompleteUpload,
    request: Request,
    project: ProjectDep,
    background: BackgroundTasks,
) -> UploadObject:
    """Join the parts, in the order given, into a file; the parts are removed after."""
    storage = _storage(request)
    done: tuple[UploadObject, str, list[str]] | None = None
    try:
        async with request_transaction(request) as session:
            done = await service.complete(session, storage, project, upload_id, body)
    except BaseException:
        if done is not None:  # the commit failed: the file's bytes go too
            await storage.delete(done[1])
        raise
    upload, _, part_keys = done
    background.add_task(_delete_all, storage, part_keys)
    return upload


@router.post("/uploads/{upload_id}/cancel")
async def cancel_upload(
    upload_id: str,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
    background: BackgroundTasks,
) -> UploadObject:
    """Cancel a pending upload; its parts' bytes are removed once that has committed."""
    upload, keys = await service.cancel(session, project, upload_id)
    background.add_task(_delete_all, _storage(request), keys)
    return upload
