"""Conversations and their items: create, read, update, delete; items in insertion order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.conversations import from_thread
from assistd.conversations.schemas import (
    INCLUDABLE,
    ConversationCreate,
    ConversationObject,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputItem,
    ItemList,
    MessageItem,
    MovedConversation,
    OutputText,
    Refusal,
)
from assistd.core import ids
from assistd.core.clock import now
from assistd.core.errors import InvalidRequestError
from assistd.core.pagination import ListParams
from assistd.core.repository import Repository
from assistd.files import service as files_service
from assistd.models import Conversation, ConversationItem

_ID_PREFIXES = {
    "message": ids.MESSAGE,
    "function_call": ids.FUNCTION_CALL_ITEM,
    "function_call_output": ids.FUNCTION_CALL_OUTPUT_ITEM,
}
_ASSISTANT_PARTS = ("output_text", "refusal")
_INPUT_PARTS = ("input_text", "input_image", "input_file")


_CONVERSATIONS = Repository(Conversation, "conversation", "conversation_id")
_ITEMS = Repository(ConversationItem, "item", "item_id", scope="conversation_id")


def to_wire(c: Conversation) -> ConversationObject:
    """The API shape of a conversation."""
    return ConversationObject(id=c.id, created_at=c.created_at, metadata=c.metadata_)


def item_list(rows: list[ConversationItem], has_more: bool) -> ItemList:
    """A page of items in their wire shape."""
    return ItemList(
        data=[r.data for r in rows],
        first_id=rows[0].id if rows else None,
        last_id=rows[-1].id if rows else None,
        has_more=has_more,
    )


def check_include(include: list[str]) -> list[str]:
    """Validate ``include`` values (stored items already carry what they include)."""
    for value in include:
        if value not in INCLUDABLE:
            raise InvalidRequestError(
                f"Invalid value for 'include': {value!r}. Supported values are: "
                + ", ".join(f"'{v}'" for v in INCLUDABLE)
                + ".",
                param="include",
                code="invalid_value",
            )
    return include


async def create(session: AsyncSession, project_id: str, req: ConversationCreate) -> Conversation:
    """A conversation with its initial items, in one transaction."""
    row = await _new(session, project_id, req.metadata or {})
    if req.items:
        await _insert_items(session, project_id, row.id, req.items)
    return row


async def create_from_thread(
    session: AsyncSession, project_id: str, req: ConversationCreate, thread_id: str
) -> MovedConversation:
    """A conversation holding the thread's messages as items (then ``req.items``), with the
    thread's metadata unless ``req`` gives some; the thread itself is left as it is."""
    moved = await from_thread.read(session, project_id, thread_id)
    row = await _new(session, project_id, moved.metadata if req.metadata is None else req.metadata)
    await append(session, project_id, row.id, [with_id(shape) for shape in moved.items])
    if req.items:
        await _insert_items(session, project_id, row.id, req.items)
    return MovedConversation(**to_wire(row).model_dump(), tool_resources=moved.resources)


async def _new(session: AsyncSession, project_id: str, metadata: dict[str, str]) -> Conversation:
    row = Conversation(
        id=ids.new_id(ids.CONVERSATION),
        project_id=project_id,
        created_at=now(),
        metadata_=metadata,
    )
    session.add(row)
    await session.flush()
    return row


async def get(
    session: AsyncSession, project_id: str, conversation_id: str, *, lock: bool = False
) -> Conversation:
    """A conversation of the project, or 404; ``lock`` holds it against deletion until the
    transaction ends (items are being added)."""
    return await _CONVERSATIONS.get(
        session, project_id, conversation_id, lock="share" if lock else None
    )


async def update(
    session: AsyncSession, project_id: str, conversation_id: str, metadata: dict[str, str] | None
) -> Conversation:
    """Replace the metadata."""
    row = await get(session, project_id, conversation_id)
    return await _CONVERSATIONS.modify(session, row, {"metadata": metadata})


async def delete_conversation(session: AsyncSession, project_id: str, conversation_id: str) -> None:
    """Delete a conversation and (by cascade) its items."""
    await _CONVERSATIONS.delete(session, project_id, conversation_id)


async def add_items(
    session: AsyncSession, project_id: str, conversation_id: str, items: list[InputItem]
) -> list[ConversationItem]:
    """Append items to a conversation, in the order given."""
    await get(session, project_id, conversation_id, lock=True)
    return await _insert_items(session, project_id, conversation_id, items)


async def list_items(
    session: AsyncSession, project_id: str, conversation_id: str, params: ListParams
) -> tuple[list[ConversationItem], bool]:
    """A page of a conversation's items (404 for another project's conversation)."""
    await get(session, project_id, conversation_id)
    return await _ITEMS.page(
        session, conversation_id, params, ConversationItem.project_id == project_id
    )


async def get_item(
    session: AsyncSession, project_id: str, conversation_id: str, item_id: str
) -> ConversationItem:
    """One item of a conversation of the project, or 404."""
    await get(session, project_id, conversation_id)
    return await _ITEMS.get(
        session, conversation_id, item_id, ConversationItem.project_id == project_id
    )


async def delete_item(
    session: AsyncSession, project_id: str, conversation_id: str, item_id: str
) -> Conversation:
    """Delete one item; answer with its conversation, as OpenAI does."""
    conversation = await get(session, project_id, conversation_id)
    await _ITEMS.delete(
        session, conversation_id, item_id, ConversationItem.project_id == project_id
    )
    return conversation


async def _insert_items(
    session: AsyncSession, project_id: str, conversation_id: str, items: list[InputItem]
) -> list[ConversationItem]:
    """Validate what the schema cannot (roles' content kinds, file ids, references), then
    store each item in its wire shape with a new id."""
    shapes = [
        await stored_shape(session, project_id, item, f"items[{i}]") for i, item in enumerate(items)
    ]
    return await append(session, project_id, conversation_id, [with_id(s) for s in shapes])


def with_id(shape: dict[str, Any]) -> dict[str, Any]:
    """An item shape with a new id of its kind."""
    prefix = _ID_PREFIXES.get(shape["type"], "item_")
    return {"id": ids.new_id(prefix), **{k: v for k, v in shape.items() if k != "id"}}


async def append(
    session: AsyncSession, project_id: str, conversation_id: str, items: list[dict[str, Any]]
) -> list[ConversationItem]:
    """Append items already in their wire shape (ids included), in order."""
    created = now()
    rows = [
        ConversationItem(
            id=data["id"],
            project_id=project_id,
            conversation_id=conversation_id,
            created_at=created,
            type=data["type"],
            data=data,
        )
        for data in items
    ]
    session.add_all(rows)
    # One flush: the rows get their seq (insertion order) in the order added.
    await session.flush()
    return rows


async def items_until(
    session: AsyncSession, conversation_id: str, seq: int
) -> list[dict[str, Any]]:
    """The conversation's items up to ``seq``, in order."""
    found = await session.scalars(
        select(ConversationItem.data)
        .where(ConversationItem.conversation_id == conversation_id, ConversationItem.seq <= seq)
        .order_by(ConversationItem.seq)
    )
    return list(found)


async def stored_shape(
    session: AsyncSession, project_id: str, item: InputItem, param: str
) -> dict[str, Any]:
    """The wire shape of an item, without its id (an ``item_reference``: the item it names)."""
    if isinstance(item, MessageItem):
        return await _message(session, project_id, item, param)
    if isinstance(item, FunctionCallItem):
        shape: dict[str, Any] = {
            "type": "function_call",
            "status": item.status or "completed",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
        if item.namespace is not None:
            shape["namespace"] = item.namespace
        return shape
    if isinstance(item, FunctionCallOutputItem):
        output: Any = item.output
        if not isinstance(output, str):
            await _check_files(session, project_id, output, f"{param}.output")
            output = [p.model_dump(exclude_none=True) for p in output]
        return {
            "type": "function_call_output",
            "status": item.status or "completed",
            "call_id": item.call_id,
            "output": output,
        }
    referenced = await session.scalar(
        select(ConversationItem.data).where(
            ConversationItem.id == item.id, ConversationItem.project_id == project_id
        )
    )
    if referenced is None:
        raise InvalidRequestError(
            f"No item found with id '{item.id}'.", param=f"{param}.id", code="invalid_value"
        )
    return {k: v for k, v in referenced.items() if k != "id"}


async def _message(
    session: AsyncSession, project_id: str, item: MessageItem, param: str
) -> dict[str, Any]:
    assistant = item.role == "assistant"
    content: list[dict[str, Any]]
    if isinstance(item.content, str):
        part = (
            {"type": "output_text", "text": item.content, "annotations": [], "logprobs": []}
            if assistant
            else {"type": "input_text", "text": item.content}
        )
        content = [part]
    else:
        allowed = _ASSISTANT_PARTS if assistant else _INPUT_PARTS
        for j, p in enumerate(item.content):
            if p.type not in allowed:
                raise InvalidRequestError(
                    f"Invalid value: '{p.type}'. Supported values for role '{item.role}' are: "
                    + ", ".join(f"'{a}'" for a in allowed)
                    + ".",
                    param=f"{param}.content[{j}].type",
                    code="invalid_value",
                )
        await _check_files(session, project_id, item.content, f"{param}.content")
        content = [_part(p) for p in item.content]
    shape: dict[str, Any] = {
        "type": "message",
        "status": item.status or "completed",
        "role": item.role,
        "content": content,
    }
    if item.phase is not None:
        shape["phase"] = item.phase
    return shape


def _part(p: Any) -> dict[str, Any]:
    if isinstance(p, OutputText):
        return {
            "type": "output_text",
            "text": p.text,
            "annotations": p.annotations,
            "logprobs": p.logprobs or [],
        }
    if isinstance(p, Refusal):
        return {"type": "refusal", "refusal": p.refusal}
    data: dict[str, Any] = p.model_dump(exclude_none=True)
    return data


async def _check_files(
    session: AsyncSession, project_id: str, parts: list[Any], param: str
) -> None:
    """Every ``file_id`` a part names must be a file of the project."""
    for j, p in enumerate(parts):
        if isinstance(p, (InputImage, InputFile)) and p.file_id is not None:
            await files_service.require_files(
                session, project_id, [p.file_id], f"{param}[{j}].file_id"
            )
