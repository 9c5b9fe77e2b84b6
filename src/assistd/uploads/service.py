"""Uploads: a row per upload and per part, the parts' bytes in file storage.

A part is streamed to storage outside any transaction, then recorded under the upload's row
lock (which rechecks that the upload still takes parts and has room for it); completing
takes the same lock, joins the parts in the order given into a new file and drops them.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Literal, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import ids
from assistd.core.clock import now
from assistd.core.errors import (
    ConflictingStateError,
    InvalidRequestError,
    PayloadTooLargeError,
)
from assistd.core.repository import Repository
from assistd.files import service as files_service
from assistd.files.storage import FileStorage
from assistd.models import File, Upload, UploadPart
from assistd.uploads.schemas import CompleteUpload, CreateUpload, UploadObject, UploadPartObject

EXPIRES_SECONDS = 3600
"""An upload takes parts for an hour after its creation (OpenAI's contract)."""

EXPIRED_BATCH = 100
"""Expired uploads whose parts are deleted per maintenance round."""


Status = Literal["pending", "completed", "cancelled", "expired"]


def status_of(upload: Upload) -> Status:
    """The wire status: a pending upload past its hour is ``expired``."""
    if upload.status == "pending" and upload.expires_at <= now():
        return "expired"
    return cast(Status, upload.status)


def to_wire(upload: Upload, file: File | None = None) -> UploadObject:
    """The API shape of an upload (with its file once completed)."""
    return UploadObject(
        id=upload.id,
        bytes=upload.bytes,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        filename=upload.filename,
        purpose=upload.purpose,
        status=status_of(upload),
        file=files_service.to_wire(file) if file is not None else None,
    )


def part_to_wire(part: UploadPart) -> UploadPartObject:
    """The API shape of a part."""
    return UploadPartObject(id=part.id, created_at=part.created_at, upload_id=part.upload_id)


async def create(
    session: AsyncSession, project_id: str, body: CreateUpload, max_bytes: int
) -> Upload:
    """A pending upload of ``body.bytes`` bytes (at most ``max_bytes``)."""
    if body.bytes > max_bytes:
        raise InvalidRequestError(
            f"Invalid 'bytes': an upload can hold at most {max_bytes} bytes, but "
            f"{body.bytes} were declared.",
            param="bytes",
            code="invalid_value",
        )
    created = now()
    row = Upload(
        id=ids.new_id(ids.UPLOAD),
        project_id=project_id,
        created_at=created,
        expires_at=created + EXPIRES_SECONDS,
        bytes=body.bytes,
        filename=body.filename,
        purpose=body.purpose,
        mime_type=body.mime_type,
        status="pending",
        file_expires_after=body.expires_after.seconds if body.expires_after else None,
        file_id=None,
    )
    session.add(row)
    await session.flush()
    return row


_REPO = Repository(Upload, "upload", "upload_id")


async def _get(session: AsyncSession, project_id: str, upload_id: str, lock: bool) -> Upload:
    return await _REPO.get(session, project_id, upload_id, lock="update" if lock else None)


def _require_pending(upload: Upload, doing: str) -> None:
    status = status_of(upload)
    if status != "pending":
        raise ConflictingStateError(
            f"Cannot {doing} upload '{upload.id}': it is {status}.",
            param="upload_id",
            code="invalid_state",
        )


async def _stored(session: AsyncSession, upload_id: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(UploadPart.bytes), 0)).where(
            UploadPart.upload_id == upload_id
        )
    )
    return int(total or 0)


async def room_for_part(session: AsyncSession, project_id: str, upload_id: str) -> int:
    """Bytes the upload still takes (its declared size less the parts stored); 400 unless it
    is pending."""
    upload = await _get(session, project_id, upload_id, lock=False)
    _require_pending(upload, "add a part to")
    return upload.bytes - await _stored(session, upload_id)


def part_key(project_id: str, upload_id: str, part_id: str) -> str:
    """Where a part's bytes live in file storage."""
    return f"{project_id}/uploads/{upload_id}/{part_id}"


def _too_much(room: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"The part does not fit the upload: it has room for {room} more bytes of the "
        "number declared when it was created.",
        param="data",
        code="invalid_value",
    )


async def store_part(
    storage: FileStorage, key: str, source: BinaryIO, room: int, max_part_bytes: int
) -> int:
    """Copy a part's bytes to storage, chunk by chunk; refuse it past ``max_part_bytes`` or
    past the upload's ``room``."""
    try:
        return await storage.put(key, source, min(room, max_part_bytes))
    except PayloadTooLargeError:
        if room < max_part_bytes:
            raise _too_much(room) from None
        raise PayloadTooLargeError(
            f"Part is too large. The maximum part size is {max_part_bytes} bytes.",
            param="data",
            code="part_too_large",
        ) from None


async def record_part(
    session: AsyncSession, project_id: str, upload_id: str, part_id: str, key: str, size: int
) -> UploadPart:
    """The part's row, under the upload's lock: it is still pending and the part still fits
    (another part may have arrived meanwhile)."""
    upload = await _get(session, project_id, upload_id, lock=True)
    _require_pending(upload, "add a part to")
    room = upload.bytes - await _stored(session, upload_id)
    if size > room:
        raise _too_much(room)
    part = UploadPart(
        id=part_id, upload_id=upload_id, created_at=now(), bytes=size, storage_key=key
    )
    session.add(part)
    await session.flush()
    return part


async def _drop_parts(session: AsyncSession, upload_id: str) -> list[str]:
    keys = await session.scalars(
        delete(UploadPart)
        .where(UploadPart.upload_id == upload_id)
        .returning(UploadPart.storage_key)
    )
    return list(keys)


async def complete(
    session: AsyncSession,
    storage: FileStorage,
    project_id: str,
    upload_id: str,
    body: CompleteUpload,
) -> tuple[UploadObject, str, list[str]]:
    """Join the parts into a new file; return the completed upload, the file's storage key
    (to remove if the transaction fails) and the parts' keys (to remove once it commits)."""
    upload = await _get(session, project_id, upload_id, lock=True)
    _require_pending(upload, "complete")
    seen: set[str] = set()
    for i, part_id in enumerate(body.part_ids):
        if part_id in seen:
            raise InvalidRequestError(
                f"Part '{part_id}' is listed more than once.",
                param=f"part_ids[{i}]",
                code="invalid_value",
            )
        seen.add(part_id)
    rows = await session.scalars(
        select(UploadPart).where(
            UploadPart.upload_id == upload_id, UploadPart.id.in_(body.part_ids)
        )
    )
    parts = {p.id: p for p in rows}
    for i, part_id in enumerate(body.part_ids):
        if part_id not in parts:
            raise InvalidRequestError(
                f"No part found with id '{part_id}' in upload '{upload_id}'.",
                param=f"part_ids[{i}]",
                code="invalid_value",
            )
    ordered = [parts[p] for p in body.part_ids]
    total = sum(p.bytes for p in ordered)
    if total != upload.bytes:
        raise InvalidRequestError(
            f"The parts hold {total} bytes, but the upload was created with {upload.bytes} "
            "bytes: they must match.",
            param="part_ids",
            code="invalid_value",
        )
    file_id = ids.new_id(ids.FILE)
    key = files_service.storage_key(project_id, file_id)
    digest = hashlib.md5(usedforsecurity=False) if body.md5 is not None else None
    await storage.concat(key, [p.storage_key for p in ordered], digest)
    try:
        if digest is not None and digest.hexdigest() != (body.md5 or "").strip().lower():
            raise InvalidRequestError(
                f"The md5 checksum of the uploaded bytes is {digest.hexdigest()}, not {body.md5}.",
                param="md5",
                code="invalid_value",
            )
        file = await files_service.record(
            session,
            project_id,
            file_id,
            size=total,
            filename=upload.filename,
            purpose=upload.purpose,
            expires_after_seconds=upload.file_expires_after,
        )
        upload.status = "completed"
        upload.file_id = file.id
        part_keys = await _drop_parts(session, upload_id)
        await session.flush()
    except BaseException:
        await storage.delete(key)
        raise
    return to_wire(upload, file), key, part_keys


async def cancel(
    session: AsyncSession, project_id: str, upload_id: str
) -> tuple[UploadObject, list[str]]:
    """Cancel a pending upload; return it and its parts' keys (to remove once it commits)."""
    upload = await _get(session, project_id, upload_id, lock=True)
    _require_pending(upload, "cancel")
    upload.status = "cancelled"
    keys = await _drop_parts(session, upload_id)
    await session.flush()
    return to_wire(upload), keys


async def expire(session: AsyncSession) -> list[str]:
    """Mark up to ``EXPIRED_BATCH`` pending uploads past their hour ``expired`` and drop their
    parts; return the parts' storage keys, which the caller removes after commit."""
    stale = (
        select(Upload.id)
        .where(Upload.status == "pending", Upload.expires_at <= now())
        .limit(EXPIRED_BATCH)
        .with_for_update(skip_locked=True)
    )
    expired = list(
        await session.scalars(
            update(Upload)
            .where(Upload.id.in_(stale.scalar_subquery()))
            .values(status="expired")
            .returning(Upload.id)
        )
    )
    if not expired:
        return []
    keys = await session.scalars(
        delete(UploadPart)
        .where(UploadPart.upload_id.in_(expired))
        .returning(UploadPart.storage_key)
    )
    return list(keys)
