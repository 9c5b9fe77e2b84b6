"""Where file bytes live, behind a small protocol. Local directory by default."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio

from assistd.core.config import Settings
from assistd.core.errors import PayloadTooLargeError

CHUNK = 1024 * 1024


class Digest(Protocol):
    """A running checksum (``hashlib.md5()``) fed the bytes as they are written."""

    def update(self, data: bytes, /) -> None:
        """Add ``data``."""
        ...


class FileStorage(Protocol):
    """Byte storage keyed by opaque strings."""

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        """Copy ``source`` under ``key``; return its size. Over ``max_bytes`` nothing is kept."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> int:
        """Store ``data`` under ``key``."""
        ...

    async def concat(self, key: str, sources: Sequence[str], digest: Digest | None = None) -> int:
        """Write the bytes under ``sources``, in order, under ``key`` (feeding ``digest``);
        return the size. Chunk by chunk: no source is held whole in memory."""
        ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under ``key``, in chunks."""
        ...

    async def read(self, key: str) -> bytes:
        """All bytes under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` (missing keys are fine)."""
        ...


class LocalFileStorage:
    """Files in a local directory; writes go to a temp name and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def _write(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLargeError(
                            f"File is too large. The maximum file size is {max_bytes} bytes.",
                            param="file",
                            code="file_too_large",
                        )
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> int:
        """Copy ``source`` under ``key`` without blocking the event loop."""
        return await anyio.to_thread.run_sync(self._write, key, source, max_bytes)

    def _concat(self, key: str, sources: Sequence[str], digest: Digest | None) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        size = 0
        try:
            with open(tmp, "wb") as out:
                for source in sources:
                    with open(self._path(source), "rb") as part:
                        while chunk := part.read(CHUNK):
                            size += len(chunk)
                            if digest is not None:
                                digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    async def concat(self, key: str, sources: Sequence[str], digest: Digest | None = None) -> int:
        """Join ``sources`` under ``key`` in a thread (a temp name renamed into place)."""
        return await anyio.to_thread.run_sync(self._concat, key, sources, digest)

    async def put_bytes(self, key: str, data: bytes) -> int:
        """Store ``data`` under ``key``."""
        import io

        return await self.put(key, io.BytesIO(data), len(data))

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        """Yield the file in 1 MiB chunks."""
        async with await anyio.open_file(self._path(key), "rb") as f:
            while chunk := await f.read(CHUNK):
                yield chunk

    async def read(self, key: str) -> bytes:
        """All bytes under ``key``."""
        return await anyio.Path(self._path(key)).read_bytes()

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        await anyio.Path(self._path(key)).unlink(missing_ok=True)


def make_storage(settings: Settings) -> FileStorage:
    """The configured storage backend (only ``local`` so far)."""
    if settings.storage.backend != "local":
        raise ValueError(f"unknown storage backend {settings.storage.backend!r}")
    return LocalFileStorage(settings.storage_dir)
