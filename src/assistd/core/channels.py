"""The NOTIFY channels, and the payloads sent on them: built and parsed here only.

Every notification is sent inside a transaction (delivered at commit) and only makes a waiter
fast: each waiter also polls (see ``core/notify.py``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

EVENTS_CHANNEL = "assistd_run_events"
"""Payload: the id of a run whose event log grew (sent by the ``run_events`` trigger of
migrations 0005 and 0006, which spell the name themselves)."""
QUEUE_CHANNEL = "assistd_runs"
"""Payload: a ``Wake`` (``queue_payload``) for the workers."""
KEYS_CHANNEL = "assistd_keys"
"""Payload: the digest of a key just revoked (every API process forgets it at once instead of
trusting its cache for the cache's lifetime)."""


class Wake(StrEnum):
    """What a queue notification tells the workers."""

    QUEUED = "queued"
    """A run (the id) is queued: claim."""
    CANCEL = "cancel"
    """A run (the id) is being cancelled: its executor stops."""
    INGEST = "ingest"
    """A vector store (the id) has files to ingest."""
    THREAD_DELETED = "thread_deleted"
    """A thread (the id) is gone: its code_interpreter sandbox goes too."""


class QueueNote(NamedTuple):
    """A parsed queue payload."""

    kind: Wake
    target: str


def queue_payload(kind: Wake, target: str) -> str:
    """The ``QUEUE_CHANNEL`` payload telling ``kind`` about the object ``target``."""
    return f"{kind.value}:{target}"


def queue_notification(kind: Wake, target: str) -> tuple[str, str]:
    """``(channel, payload)`` of a queue notification, for statements that send their own."""
    return QUEUE_CHANNEL, queue_payload(kind, target)


def parse_queue_payload(payload: str) -> QueueNote | None:
    """The kind and object of a ``QUEUE_CHANNEL`` payload (None: not one of ours)."""
    kind, sep, target = payload.partition(":")
    if not sep:
        return None
    try:
        return QueueNote(Wake(kind), target)
    except ValueError:
        return None


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """``pg_notify`` inside the session's transaction (delivered at commit)."""
    await session.execute(select(func.pg_notify(channel, payload)))


async def wake_workers(session: AsyncSession, kind: Wake, target: str) -> None:
    """Tell the workers (at commit) about ``target``."""
    await notify(session, QUEUE_CHANNEL, queue_payload(kind, target))
