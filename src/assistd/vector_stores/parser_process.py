"""Parsing and chunking in a long-lived child process with hard memory and time limits, so
a hostile document that makes the parsers allocate gigabytes fails alone instead of taking
the server down (frames on its pipes: an 8-byte big-endian length, then the payload)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
from typing import Any, BinaryIO

from assistd.core.config import IngestSettings
from assistd.vector_stores import chunking, parsing

__all__ = ["ParserPool"]

log = logging.getLogger(__name__)

_HEADER = 8
_WRITE_PIECE = 1 << 20
_START_SECONDS = 60.0
"""Time a new child may take to import its libraries and say it is ready."""
_READY = b"ready"


def _memory_message(memory_bytes: int) -> str:
    return f"Parsing the file needed more than the {parsing.size_text(memory_bytes)} memory limit."


# ------------------------------------------------------------------------------------------
# The child


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        return None
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    return data if len(data) == size else None


def _write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(_HEADER, "big"))
    stream.write(payload)
    stream.flush()


def _memory() -> tuple[int, int]:
    """This process's address space and resident set, in bytes."""
    with open("/proc/self/statm") as statm:
        size, resident = statm.read().split()[:2]
    page = resource.getpagesize()
    return int(size) * page, int(resident) * page


def _handle(
    request: dict[str, Any], data: bytes, limits: parsing.Limits, memory_bytes: int
) -> dict[str, Any]:
    try:
        pages = parsing.extract_text(
            request["filename"], data, request.get("mime_type"), limits=limits
        )
        del data
        chunks = chunking.chunk_pages(pages, request["max_tokens"], request["overlap_tokens"])
    except parsing.ParseError as exc:
        limit = isinstance(exc, parsing.LimitError)
        return {"error": {"code": exc.code, "message": exc.message, "limit": limit}}
    except MemoryError:
        message = _memory_message(memory_bytes)
        error = {"code": "invalid_file", "message": message, "limit": True}
        return {"error": error, "retire": True}
    except Exception as exc:  # a bug or an unexpected library failure: a server error
        return {"error": {"code": "server_error", "message": f"Ingestion failed: {exc}"}}
    return {"chunks": [[c.index, c.text, c.tokens, c.page, c.head, c.tail] for c in chunks]}


def _child_main(config: dict[str, Any]) -> None:
    memory = int(config["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # PDFium aborts when out of memory
    limits = parsing.Limits(**config["limits"])
    # The protocol keeps the real stdout; whatever a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    # Loaded once here rather than on the first file of each kind.
    import docx  # noqa: F401
    import lxml.html  # noqa: F401
    import pypdfium2  # noqa: F401

    chunking.chunk_pages([parsing.Page("ready")])
    # The budget is what a file may add to the libraries loaded above.
    size, ready_rss = _memory()
    limit = size + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _write_frame(out, _READY)
    while True:
        header = _read_frame(source)
        data = _read_frame(source) if header is not None else None
        if header is None or data is None:
            return
        reply = _handle(json.loads(header), data, limits, memory)
        del data
        # Memory a big file left behind is returned by ending this child (the parent
        # starts another); fragmentation would keep it otherwise.
        reply["retire"] = reply.get("retire", False) or _memory()[1] - ready_rss > memory // 2
        _write_frame(out, json.dumps(reply, ensure_ascii=False).encode())
        if reply["retire"]:
            return


# ------------------------------------------------------------------------------------------
# The parent


class _ChildGone(Exception):
    """The child closed its pipes (it crashed, was killed, or broke the protocol)."""


class _Child:
    """One parser process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout

    async def send(self, payload: bytes) -> None:
        self.stdin.write(len(payload).to_bytes(_HEADER, "big"))
        view = memoryview(payload)
        # In pieces, so the transport never buffers a second copy of a large file.
        for start in range(0, len(view), _WRITE_PIECE):
            self.stdin.write(view[start : start + _WRITE_PIECE])
            await self.stdin.drain()
        await self.stdin.drain()

    async def receive(self, max_bytes: int) -> bytes:
        size = int.from_bytes(await self.stdout.readexactly(_HEADER), "big")
        if size > max_bytes:
            raise _ChildGone(f"a reply of {size} bytes")
        return await self.stdout.readexactly(size)

    async def end(self) -> int:
        """Kill the child (if still running) and reap it; its exit status."""
        if self.process.returncode is None:
            # Not Process.kill(): Popen polls first, which can reap the exited child under
            # the loop's watcher, and its status (the signal that ended it) is lost.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        return await self.process.wait()


class ParserPool:
    """Long-lived parser processes, one per file being parsed at once; a child that failed
    is replaced by a new one on the next file."""

    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings
        self._limits = parsing.Limits(
            max_chars=settings.max_chars,
            max_page_chars=settings.max_page_chars,
            max_part_bytes=settings.max_part_bytes,
        )
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        # The largest honest reply: chunk texts overlap at most twice, 4 UTF-8 bytes or a
        # 2-byte JSON escape a character, and each chunk's numbers.
        self._max_reply = 16 * settings.max_chars + (1 << 20)

    async def _start(self) -> _Child:
        config = {
            "memory_bytes": self._settings.memory_bytes,
            "limits": {
                "max_chars": self._limits.max_chars,
                "max_page_chars": self._limits.max_page_chars,
                "max_part_bytes": self._limits.max_part_bytes,
            },
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = _Child(process)
        try:
            async with asyncio.timeout(_START_SECONDS):
                ready = await child.receive(len(_READY))
        except (TimeoutError, _ChildGone, asyncio.IncompleteReadError) as exc:
            status = await child.end()
            raise RuntimeError(f"the parser process did not start (status {status})") from exc
        except BaseException:
            await child.end()
            raise
        if ready != _READY:
            await child.end()
            raise RuntimeError("the parser process did not start")
        return child

    async def _take(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.process.returncode is None:
                return child
            await child.end()  # ended while idle (killed from outside): reap it
        return await self._start()

    async def chunk(
        self,
        filename: str,
        data: bytes,
        max_tokens: int,
        overlap_tokens: int,
        mime_type: str | None = None,
    ) -> list[chunking.Chunk]:
        """Parse and chunk one file in a parser process.

        Raises :class:`parsing.ParseError` for files that cannot be read or break a limit
        (memory and time included), ``RuntimeError`` for failures of our own.
        """
        child = await self._take()
        self._busy.add(child)
        keep = False
        settings = self._settings
        request = {
            "filename": filename,
            "mime_type": mime_type,
            "max_tokens": max_tokens,
            "overlap_tokens": overlap_tokens,
        }
        try:
            try:
                async with asyncio.timeout(settings.timeout_seconds):
                    await child.send(json.dumps(request).encode())
                    await child.send(data)
                    raw = await child.receive(self._max_reply)
            except TimeoutError:
                raise parsing.LimitError(
                    f"Parsing the file took longer than the {settings.timeout_seconds:g} s limit."
                ) from None
            except (_ChildGone, ConnectionError, asyncio.IncompleteReadError) as exc:
                status = await child.end()
                log.warning("the parser process ended (status %s) on %s: %s", status, filename, exc)
                if status < 0:
                    # Out of address space, PDFium and libxml2 abort rather than fail.
                    name = signal.Signals(-status).name
                    memory = parsing.size_text(settings.memory_bytes)
                    raise parsing.LimitError(
                        f"The parser was ended by {name} while reading the file: parsing "
                        f"needed more than the {memory} memory limit, or the file crashed it."
                    ) from None
                raise RuntimeError(f"the parser process ended with status {status}") from None
            reply = json.loads(raw)
            keep = not reply.get("retire", True)
        finally:
            self._busy.discard(child)
            if keep:
                self._idle.append(child)
            else:
                await child.end()
        if "error" in reply:
            code, message = reply["error"]["code"], reply["error"]["message"]
            if reply["error"].get("limit"):
                raise parsing.LimitError(message)
            if code == "unsupported_file":
                raise parsing.UnsupportedFileError(message)
            if code == "invalid_file":
                raise parsing.InvalidFileError(message)
            raise RuntimeError(message)
        return [
            chunking.Chunk(index=i, text=t, tokens=n, page=p, head=h, tail=tail)
            for i, t, n, p, h, tail in reply["chunks"]
        ]

    async def close(self) -> None:
        """End every parser process."""
        children = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        for child in children:
            await child.end()


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
