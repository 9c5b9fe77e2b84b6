"""What executing a run needs from the process, built once at startup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistd.core.config import Settings
from assistd.files.storage import FileStorage
from assistd.llm.chat import BackendRouter, router_from_environment
from assistd.llm.embeddings import Embedder
from assistd.sandbox.manager import SandboxManager
from assistd.vector_stores.parser_process import ParserPool


@dataclass
class EngineDeps:
    """What executing a run needs from the process."""

    maker: async_sessionmaker[AsyncSession]
    router: BackendRouter
    storage: FileStorage
    settings: Settings
    embedders: Callable[[str], Embedder]
    """Embedder by model name (a vector store keeps the model it was created with)."""
    sandbox: SandboxManager | None = None
    """Runs code_interpreter calls (None: the tool is not available)."""
    parsers: ParserPool | None = None
    """Parser processes: ingestion, and the text of a response's ``input_file`` parts."""


def build_engine_deps(
    settings: Settings,
    maker: async_sessionmaker[AsyncSession],
    storage: FileStorage,
    embedders: Callable[[str], Embedder],
) -> EngineDeps:
    """Engine dependencies from settings (backends from the SDK's environment variables)."""
    router = router_from_environment(
        models_file=settings.models.models_file,
        max_retries=settings.models.max_retries,
        timeout=settings.models.timeout_seconds,
    )
    return EngineDeps(
        maker=maker,
        router=router,
        storage=storage,
        settings=settings,
        embedders=embedders,
        sandbox=SandboxManager(settings.sandbox),
        parsers=ParserPool(settings.ingest),
    )
