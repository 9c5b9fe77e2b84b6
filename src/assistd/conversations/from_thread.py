"""Moving an Assistants thread in place: its messages as conversation items, in order, with
what its runs used (vector stores, code_interpreter files). The thread, its files and its
stores are only read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.conversations.schemas import (
    CodeInterpreterFiles,
    FileSearchStores,
    ThreadResources,
)
from assistd.core.errors import ConflictingStateError, NotFoundError
from assistd.models import File, Message, Run, Thread, VectorStore
from assistd.models.run import ACTIVE_STATUSES

_MARKER_NAME = re.compile(r"【\d+:\d+†([^】]*)】")

_ACTIVE_RUN = (
    select(Run.id)
    .where(Run.thread_id == Thread.id, Run.status.in_(ACTIVE_STATUSES))
    .limit(1)
    .scalar_subquery()
)
# FOR SHARE: a run is created under the thread's row lock, so none starts (and adds its
# answer) while the messages are read.
_IDLE_THREAD = (
    select(Thread, _ACTIVE_RUN)
    .where(Thread.id == bindparam("thread_id"), Thread.project_id == bindparam("project_id"))
    .with_for_update(of=Thread, read=True)
)


@dataclass(frozen=True)
class MovedThread:
    """A thread read for moving: item shapes (without ids), metadata, tool resources."""

    items: list[dict[str, Any]]
    metadata: dict[str, str]
    resources: ThreadResources


async def read(session: AsyncSession, project_id: str, thread_id: str) -> MovedThread:
    """The thread of the project as conversation items (404 when it is not the project's,
    400 while a run is active on it: its answer would be missing or half written)."""
    found = (
        await session.execute(_IDLE_THREAD, {"thread_id": thread_id, "project_id": project_id})
    ).first()
    if found is None:
        raise NotFoundError.for_object("thread", thread_id, param="from_thread")
    thread, active = found
    if active is not None:
        raise ConflictingStateError(
            f"Can't move thread {thread_id} while a run {active} is active.",
            param="from_thread",
        )
    messages = list(
        await session.scalars(
            select(Message).where(Message.thread_id == thread.id).order_by(Message.seq)
        )
    )
    code_files = _code_interpreter_files(thread, messages)
    cited = [
        note[note["type"]]["file_id"]
        for m in messages
        for part in m.content
        if part.get("type") == "text"
        for note in part["text"].get("annotations") or []
        if note.get("type") == "file_citation"
    ]
    names = await _filenames(session, project_id, code_files + cited)
    items = [item for m in messages if (item := _item(m, names)) is not None]
    stores = (thread.tool_resources.get("file_search") or {}).get("vector_store_ids") or []
    live_stores = set(
        await session.scalars(
            select(VectorStore.id).where(
                VectorStore.id.in_(stores), VectorStore.project_id == project_id
            )
        )
    )
    return MovedThread(
        items=items,
        metadata=thread.metadata_,
        resources=ThreadResources(
            code_interpreter=CodeInterpreterFiles(file_ids=[f for f in code_files if f in names]),
            file_search=FileSearchStores(vector_store_ids=[s for s in stores if s in live_stores]),
        ),
    )


def _code_interpreter_files(thread: Thread, messages: list[Message]) -> list[str]:
    """The thread's code_interpreter files, then its messages' attachments for it, once each
    (what a run on the thread put in /mnt/data)."""
    wanted = list((thread.tool_resources.get("code_interpreter") or {}).get("file_ids") or [])
    for m in messages:
        for attachment in m.attachments or []:
            if any(t.get("type") == "code_interpreter" for t in attachment.get("tools") or []):
                wanted.append(attachment["file_id"])
    return list(dict.fromkeys(wanted))


async def _filenames(session: AsyncSession, project_id: str, file_ids: list[str]) -> dict[str, str]:
    """File id → filename, for the files of the project that still exist."""
    if not file_ids:
        return {}
    rows = await session.execute(
        select(File.id, File.filename).where(
            File.id.in_(set(file_ids)), File.project_id == project_id
        )
    )
    return {file_id: filename for file_id, filename in rows.tuples()}


def _item(m: Message, names: dict[str, str]) -> dict[str, Any] | None:
    """A thread message as a ``message`` item; ``None`` for an assistant message that only
    showed images (code_interpreter figures have no output part; the files stay)."""
    if m.role == "assistant":
        content = [p for part in m.content if (p := _output_part(part, names)) is not None]
    else:
        content = [p for part in m.content if (p := _input_part(part)) is not None]
    if not content:
        return None
    # No run is active, so a message still in_progress was cut off by a run that ended.
    status = "completed" if m.status == "completed" else "incomplete"
    return {"type": "message", "status": status, "role": m.role, "content": content}


def _input_part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part["text"]["value"]}
    if kind == "image_file":
        image = part["image_file"]
        return {
            "type": "input_image",
            "file_id": image["file_id"],
            "detail": image.get("detail") or "auto",
        }
    if kind == "image_url":
        image = part["image_url"]
        return {
            "type": "input_image",
            "image_url": image["url"],
            "detail": image.get("detail") or "auto",
        }
    return None


def _output_part(part: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        notes = [_annotation(n, names) for n in part["text"].get("annotations") or []]
        return {
            "type": "output_text",
            "text": part["text"]["value"],
            "annotations": [n for n in notes if n is not None],
            "logprobs": [],
        }
    if kind == "refusal":
        return {"type": "refusal", "refusal": part["refusal"]}
    return None


def _annotation(note: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    """An Assistants annotation in its Responses shape; ``index`` is just after the marker
    or link, where the Responses face puts the citations of a run's answer."""
    kind = note.get("type")
    if kind == "file_citation":
        file_id = note["file_citation"]["file_id"]
        marker = _MARKER_NAME.fullmatch(str(note.get("text") or ""))
        return {
            "type": "file_citation",
            "file_id": file_id,
            # The file's name; the marker's (as the model wrote it) once the file is gone.
            "filename": names.get(file_id) or (marker.group(1) if marker else ""),
            "index": int(note["end_index"]),
        }
    if kind == "file_path":
        return {
            "type": "file_path",
            "file_id": note["file_path"]["file_id"],
            "index": int(note["end_index"]),
        }
    return None
