"""HTTP: ``/files``."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from assistd.core.errors import InvalidRequestError, PayloadTooLargeError
from assistd.core.pagination import ListParams
from assistd.core.schemas import ListPage, page_of
from assistd.files import service
from assistd.files.schemas import UPLOAD_PURPOSES, FileDeleted, FileObject
from assistd.files.storage import FileStorage
from assistd.projects.auth import ProjectDep
from assistd.web.deps import ReadSessionDep, SessionDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["files"], route_class=ApiRoute)

# Multipart framing around the file; anything beyond the file limit plus this is refused
# before a byte is parsed.
_FORM_OVERHEAD = 64 * 1024


def _storage(request: Request) -> FileStorage:
    storage: FileStorage = request.app.state.storage
    return storage


def _expires_after(anchor: str | None, seconds: str | None) -> int | None:
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequestError(
            f"Invalid value for 'expires_after.anchor': {anchor!r}. Supported values are: "
            "'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    try:
        value = int(seconds or "")
    except ValueError:
        raise InvalidRequestError(
            "Invalid type for 'expires_after.seconds': expected an integer.",
            param="expires_after.seconds",
            code="invalid_type",
        ) from None
    if not 3600 <= value <= 2_592_000:
        raise InvalidRequestError(
            "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return value


@router.post("/files")
async def upload_file(request: Request, session: SessionDep, project: ProjectDep) -> FileObject:
    """Upload a file (multipart: ``file``, ``purpose``)."""
    max_bytes: int = request.app.state.settings.limits.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes + _FORM_OVERHEAD:
        raise PayloadTooLargeError(
            f"File is too large. The maximum file size is {max_bytes} bytes.",
            param="file",
            code="file_too_large",
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Invalid Content-Type header: expected 'multipart/form-data' with 'file' and "
            "'purpose' fields.",
            param="file",
            code="invalid_value",
        )
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        if not isinstance(purpose, str) or not purpose:
            raise InvalidRequestError(
                "Missing required parameter: 'purpose'.",
                param="purpose",
                code="missing_required_parameter",
            )
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequestError(
                f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
                + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
                + ".",
                param="purpose",
                code="invalid_value",
            )
        anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
        expires = _expires_after(
            anchor if isinstance(anchor, str) else None,
            seconds if isinstance(seconds, str) else None,
        )
        row = await service.create(
            session,
            _storage(request),
            project,
            filename=upload.filename or "upload",
            purpose=purpose,
            source=upload.file,
            max_bytes=max_bytes,
            expires_after_seconds=expires,
        )
    return service.to_wire(row)


@router.get("/files")
async def list_files(
    session: ReadSessionDep,
    project: ProjectDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> ListPage[FileObject]:
    """List files."""
    params = ListParams(limit=limit, order=order, after=after)
    rows, has_more = await service.list_files(session, project, params, purpose)
    return ListPage[FileObject](**page_of([service.to_wire(r) for r in rows], has_more))


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, session: ReadSessionDep, project: ProjectDep) -> FileObject:
    """Retrieve a file's metadata."""
    return service.to_wire(await service.get(session, project, file_id))


@router.delete("/files/{file_id}")
async def delete_file(
    file_id: str,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
    background: BackgroundTasks,
) -> FileDeleted:
    """Delete a file; its bytes are removed once the deletion has committed."""
    key = await service.delete_file(session, project, file_id)
    background.add_task(_storage(request).delete, key)
    return FileDeleted(id=file_id)


@router.get(
    "/files/{file_id}/content",
    response_class=StreamingResponse,
    # The document says what the body is: raw bytes, not the JSON a route defaults to.
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_file(
    file_id: str, request: Request, session: ReadSessionDep, project: ProjectDep
) -> StreamingResponse:
    """The file's bytes."""
    row = await service.get(session, project, file_id)
    return StreamingResponse(
        _storage(request).stream(row.storage_key),
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.bytes),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(row.filename)}",
        },
    )
