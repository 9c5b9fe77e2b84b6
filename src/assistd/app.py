"""The FastAPI application: ``create_app(settings, database_url)``."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import text
from sqlalchemy.engine import URL

from assistd import __version__
from assistd.assistants.router import router as assistants_router
from assistd.catalog.router import router as catalog_router
from assistd.catalog.service import Catalog
from assistd.chat.router import router as chat_router
from assistd.containers.router import router as containers_router
from assistd.conversations.router import router as conversations_router
from assistd.core.channels import EVENTS_CHANNEL, KEYS_CHANNEL, QUEUE_CHANNEL
from assistd.core.config import Settings
from assistd.core.db import (
    DatabaseHealth,
    create_engine,
    create_read_engine,
    dispose,
    libpq_dsn,
    make_read_sessionmaker,
    make_sessionmaker,
)
from assistd.core.errors import InvalidRequestError
from assistd.core.logs import Repeats
from assistd.core.migrate import head_revisions
from assistd.core.notify import Listener
from assistd.embeddings.router import router as embeddings_router
from assistd.embeddings.service import EmbeddingModels, served_models
from assistd.engine.executor import build_engine_deps
from assistd.files.router import router as files_router
from assistd.files.storage import make_storage
from assistd.llm.chat import router_from_environment
from assistd.llm.embeddings import make_embedder
from assistd.messages.router import router as messages_router
from assistd.playground.router import playground_router
from assistd.projects.auth import KeyCache, require_project
from assistd.responses.router import router as responses_router
from assistd.runs.router import router as runs_router
from assistd.runs.starter import Starter
from assistd.threads.router import router as threads_router
from assistd.uploads.router import router as uploads_router
from assistd.vector_stores.ingest import EmbedderLookup
from assistd.vector_stores.router import router as vector_stores_router
from assistd.web import errors
from assistd.web.metrics import DatabaseCollector, metrics_endpoint
from assistd.web.middleware import RequestMiddleware
from assistd.worker.loop import Worker


async def _check_beta(request: Request) -> None:
    """Reject Assistants v1 clients as OpenAI did; a missing header is accepted."""
    beta = request.headers.get("openai-beta")
    if beta and "assistants=v1" in beta:
        raise InvalidRequestError(
            "The v1 Assistants API has been deprecated. Please use 'OpenAI-Beta: "
            "assistants=v2' with a current SDK.",
            code="invalid_beta",
        )


async def _check_api_version(request: Request) -> None:
    """The Azure OpenAI shape (``/openai/...``) requires ``?api-version=``; any is accepted."""
    if not request.query_params.get("api-version"):
        raise InvalidRequestError(
            "Missing required query parameter: 'api-version'. Azure OpenAI clients send it "
            "with every request (e.g. ?api-version=2024-10-21).",
            param="api-version",
            code="missing_required_parameter",
        )


def api_router() -> APIRouter:
    """Every ``/v1`` resource router; each request must carry a valid key."""
    router = APIRouter(dependencies=[Depends(require_project), Depends(_check_beta)])
    # runs first: ``POST /threads/runs`` must not be taken for ``POST /threads/{thread_id}``.
    for sub in (
        runs_router,
        assistants_router,
        threads_router,
        messages_router,
        files_router,
        vector_stores_router,
        uploads_router,
        catalog_router,
        chat_router,
        embeddings_router,
        responses_router,
        conversations_router,
        containers_router,
    ):
        router.include_router(sub)
    return router


def app_from_environment() -> FastAPI:
    """The application of one of ``assistd serve --processes N``'s server processes: the
    parent resolved and migrated the database and passes everything in the environment."""
    from assistd.core import logs
    from assistd.core.db import async_url
    from assistd.core.runtime import tune_gc

    settings = Settings()
    logs.setup(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise RuntimeError("app_from_environment needs ASSISTD_DATABASE_URL")
    app = create_app(settings, async_url(settings.database_url.get_secret_value()))
    tune_gc()
    return app


def create_app(settings: Settings, database_url: URL) -> FastAPI:
    """Build the application; the lifespan owns the engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        # GET endpoints read through a second, autocommit engine (web/deps.py ReadSessionDep).
        read_engine = create_read_engine(database_url, settings)
        app.state.read_sessionmaker = make_read_sessionmaker(read_engine)
        app.state.storage = make_storage(settings)
        app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
        # Embedders load their model on first use (search queries, ingestion).
        app.state.embedders = EmbedderLookup(lambda spec: make_embedder(spec))
        # Model backends for what the API itself asks of a model (search's rewrite_query).
        app.state.chat_router = router_from_environment(
            models_file=settings.models.models_file,
            max_retries=settings.models.max_retries,
            timeout=settings.models.timeout_seconds,
        )
        # /models, /chat/completions and /embeddings go through the same backends.
        app.state.catalog = Catalog(app.state.chat_router, served_models(settings.embeddings))
        app.state.embedding_models = EmbeddingModels(app.state.embedders, app.state.chat_router)
        # Scrape-time figures from the database, over a one-connection synchronous engine
        # (the exposition runs in a thread).
        metrics_engine = sa_create_engine(
            database_url, pool_size=1, max_overflow=0, pool_pre_ping=True
        )
        collector = DatabaseCollector(metrics_engine, settings.metrics.per_project)
        REGISTRY.register(collector)
        app.state.db_collector = collector
        health = DatabaseHealth([engine, read_engine])
        app.state.db_health = health
        key_cache: KeyCache = app.state.key_cache
        listener = Listener(libpq_dsn(database_url), [EVENTS_CHANNEL, QUEUE_CHANNEL, KEYS_CHANNEL])
        listener.on(KEYS_CHANNEL, key_cache.drop)

        def connection(up: bool) -> None:
            # Revocations may have gone by unheard; a lost LISTEN connection means the
            # database went away, and every pooled connection with it.
            if up:
                key_cache.clear()
            else:
                health.lost()

        listener.on_connection(connection)
        app.state.listener = listener
        await listener.start()
        worker: Worker | None = None
        worker_task: asyncio.Task[None] | None = None
        if settings.run_worker:
            deps = build_engine_deps(
                settings, app.state.sessionmaker, app.state.storage, app.state.embedders
            )
            worker = Worker(deps, listener, app.state.read_sessionmaker)
            worker_task = asyncio.create_task(worker.run(), name="worker")
        # Runs created here go straight to this worker (see runs/starter.py).
        starter: Starter | None = worker
        app.state.starter = starter
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            await listener.stop()
            REGISTRY.unregister(collector)
            metrics_engine.dispose()
            await dispose(read_engine)
            await dispose(engine)

    heads = head_revisions(database_url)
    ready_errors = Repeats(logging.getLogger(__name__))

    app = FastAPI(
        title="assistd",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    limits = settings.limits
    app.add_middleware(
        RequestMiddleware,
        authenticate=require_project,
        api_prefixes=("/v1/", "/openai/"),
        max_body_bytes=limits.max_body_bytes,
        # Multipart uploads stream to disk, each path with its own bound. Their routers hold
        # them to their exact limits; this stops a chunked one that streams on past them
        # (the framing gets generous room).
        uploads=(
            (re.compile(r"/(?:v1|openai|openai/v1)/files"), limits.max_upload_bytes + 1024 * 1024),
            (
                re.compile(r"/(?:v1|openai|openai/v1)/containers/[^/]+/files"),
                limits.max_upload_bytes + 1024 * 1024,
            ),
            (
                re.compile(r"/(?:v1|openai|openai/v1)/uploads/[^/]+/parts"),
                limits.max_upload_part_bytes + 1024 * 1024,
            ),
        ),
    )
    app.include_router(api_router(), prefix="/v1")
    # The same routers in the Azure OpenAI shape, for AzureOpenAI(azure_endpoint=...).
    app.include_router(api_router(), prefix="/openai", dependencies=[Depends(_check_api_version)])
    # Azure's v1 API shape (``OpenAI(base_url=endpoint + "/openai/v1")``): no api-version.
    app.include_router(api_router(), prefix="/openai/v1")

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    # The browser playground (``/`` redirects there) and our own ``/docs`` with local assets.
    app.include_router(playground_router())

    if settings.metrics.access == "token" and settings.metrics.token is None:
        raise ValueError("ASSISTD_METRICS__ACCESS=token needs ASSISTD_METRICS__TOKEN")

    @app.get("/health", include_in_schema=False)
    async def health(request: Request) -> JSONResponse:
        """This process can serve requests now: it answers and reaches its database
        (checked at most once a second)."""
        if await request.app.state.db_health.ok():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "detail": "database unreachable"}, 503)

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the database answers and its schema is at the code's migration head."""
        try:
            async with request.app.state.engine.connect() as conn:
                current = set(await conn.scalars(text("SELECT version_num FROM alembic_version")))
        except Exception as exc:  # any failure means not ready; the reason goes to the log
            ready_errors.failed("readiness check failed", exc, traceback=False)
            return JSONResponse(
                {"status": "unavailable", "detail": "database unreachable"}, status_code=503
            )
        ready_errors.ok("readiness check failed")
        if current != heads:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "detail": "database schema is not at the latest "
                    f"migration (database {sorted(current)}, code {sorted(heads)})",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "migration": sorted(heads)})

    return app
