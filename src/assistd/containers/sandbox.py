"""Running code in a container: its sandbox session is keyed by the container id.

The session starts on the first execution (from the warm pool when there is one); before
each execution the container's files not yet in /mnt/data are placed there, so files added
while no session ran (or no Docker engine was reachable) arrive when one starts.
"""

from __future__ import annotations

import functools

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.containers import service
from assistd.core.db import transaction
from assistd.files.storage import FileStorage
from assistd.models import ContainerFile
from assistd.sandbox.manager import Execution, InputFile, SandboxManager


def input_files(storage: FileStorage, files: list[ContainerFile]) -> list[InputFile]:
    """The container's files as the sandbox takes them (streamed from storage)."""
    return [
        InputFile(f.id, f.path, functools.partial(storage.stream, f.storage_key)) for f in files
    ]


async def execute(
    manager: SandboxManager,
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: FileStorage,
    project_id: str,
    container_id: str,
    code: str,
) -> Execution:
    """Run ``code`` in the container's session (404 for another project's container, 400
    once it has expired); the container counts as active from now."""
    async with transaction(sessionmaker) as session:
        await service.activate(session, project_id, container_id)
        files = await service.all_files(session, project_id, container_id)
    # Exact: a file deleted through the API leaves the running session too.
    return await manager.execute(container_id, code, input_files(storage, files), exact=True)
