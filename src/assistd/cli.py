"""The ``assistd`` command line: serve, worker, migrate, keys, sandbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.core import logs
from assistd.core.config import Settings
from assistd.core.db import (
    PostgresWatchdog,
    create_engine,
    database_url,
    dispose,
    libpq_dsn,
    make_sessionmaker,
    transaction,
)
from assistd.core.migrate import upgrade_to_head
from assistd.core.runtime import tune_gc
from assistd.projects import service as projects_service

app = typer.Typer(
    help="assistd: a self-hosted server for the OpenAI Assistants API (v2).",
    no_args_is_help=True,
    add_completion=False,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
sandbox_app = typer.Typer(help="The code_interpreter sandbox image.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")

T = TypeVar("T")


def _with_session(url: URL, settings: Settings, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def runner() -> T:
        engine = create_engine(url, settings)
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                return await fn(session)
        finally:
            await dispose(engine)

    return asyncio.run(runner())


def _prepare(settings: Settings) -> tuple[URL, bool]:
    """Resolve the database (starting the embedded one if needed) and migrate it."""
    url, embedded = database_url(settings)
    upgrade_to_head(url)
    return url, embedded


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into a normal exit so ``atexit`` handlers run.

    uvicorn catches SIGTERM, shuts down gracefully, restores the previous handler and raises
    the signal again. With the default handler that kills the process before ``atexit`` runs,
    which would leave the embedded Postgres running after ``assistd serve`` has stopped.
    """
    sys.exit(0)


def _print_key(secret: str, project: str) -> None:
    typer.echo(f"API key for project '{project}' (shown once, store it now):\n\n    {secret}\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also execute runs in this process.")
    ] = True,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port, each with its own worker (default 1; "
            "one per CPU uses a many-core machine).",
        ),
    ] = None,
) -> None:
    """Run the API server (migrating the database first); by default it also executes runs."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if processes is not None:
        settings.processes = processes
    settings.run_worker = settings.run_worker and worker
    logs.setup(settings.log_level)
    url, embedded = _prepare(settings)
    if embedded:
        # This process started (or attached to) the embedded Postgres: it restarts it if
        # it dies, in every shape of serve (one process, or the parent of several).
        PostgresWatchdog(settings).start()

        async def first_key(session: AsyncSession) -> projects_service.NewKey | None:
            if await projects_service.count_keys(session):
                return None
            return await projects_service.create_key(session, "default", name="first key")

        new = _with_session(url, settings, first_key)
        if new is not None:
            typer.echo("assistd: new embedded database, created a first API key.")
            _print_key(new.secret, new.project_name)
    import uvicorn

    typer.echo(f"assistd: serving on http://{settings.host}:{settings.port}/v1")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "access_log": False,
    }
    if settings.processes > 1:
        # Server processes build their app from the environment; this process supervises
        # them (replacing one that dies) and keeps the embedded Postgres.
        _export_for_processes(settings, url)
        typer.echo(f"assistd: {settings.processes} server processes")
        from assistd.web import processes as server_processes

        if not server_processes.balanced():
            uvicorn.run(server_processes.APP, factory=True, workers=settings.processes, **options)
            return
        host, port = options.pop("host"), options.pop("port")
        supervisor = server_processes.Supervisor(settings.processes, host, port, options)
        if supervisor.run():
            raise typer.Exit(1)
        return

    from assistd.app import create_app

    application = create_app(settings, url)
    tune_gc()
    uvicorn.run(application, **options)


def _export_for_processes(settings: Settings, url: URL) -> None:
    """What ``serve``'s server processes read from the environment: the database this
    process resolved (and started, when embedded), the options given on the command line,
    and each process's share of the connection pools."""
    n = settings.processes
    os.environ["ASSISTD_DATABASE_URL"] = libpq_dsn(url)
    os.environ["ASSISTD_RUN_WORKER"] = "true" if settings.run_worker else "false"
    os.environ["ASSISTD_PROCESSES"] = "1"
    os.environ["ASSISTD_DB_POOL_SIZE"] = str(max(2, -(-settings.db_pool_size // n)))
    os.environ["ASSISTD_DB_MAX_OVERFLOW"] = str(-(-settings.db_max_overflow // n))


@app.command("worker")
def worker_command() -> None:
    """Execute runs (any number of workers may share one database)."""
    settings = Settings()
    logs.setup(settings.log_level)
    url, _ = _prepare(settings)

    async def main() -> None:
        from assistd.core.db import libpq_dsn
        from assistd.core.notify import Listener
        from assistd.engine.executor import build_engine_deps
        from assistd.files.storage import make_storage
        from assistd.runs.events import EVENTS_CHANNEL, QUEUE_CHANNEL
        from assistd.worker.loop import Worker

        engine = create_engine(url, settings)
        listener = Listener(libpq_dsn(url), [EVENTS_CHANNEL, QUEUE_CHANNEL])
        await listener.start()
        from assistd.llm.embeddings import make_embedder
        from assistd.vector_stores.ingest import EmbedderLookup

        embedders = EmbedderLookup(lambda spec: make_embedder(spec))
        deps = build_engine_deps(
            settings, make_sessionmaker(engine), make_storage(settings), embedders
        )
        runner = Worker(deps, listener)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        tune_gc()
        try:
            await runner.run()
        finally:
            await listener.stop()
            await dispose(engine)

    typer.echo("assistd: worker started")
    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Apply database migrations up to head."""
    settings = Settings()
    _prepare(settings)
    typer.echo("assistd: database is at the latest migration.")


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="Project the key belongs to (created if new).")] = (
        "default"
    ),
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Create an API key and print it once."""
    settings = Settings()
    url, _ = _prepare(settings)
    new = _with_session(url, settings, lambda s: projects_service.create_key(s, project, name=name))
    _print_key(new.secret, new.project_name)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (hints only; secrets are never stored)."""
    settings = Settings()
    url, _ = _prepare(settings)
    rows = _with_session(url, settings, projects_service.list_keys)
    for key, project in rows:
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{project}\t{key.key_hint}\t{state}\t{key.name or ''}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (key_…).")]) -> None:
    """Revoke an API key by id."""
    settings = Settings()
    url, _ = _prepare(settings)
    if not _with_session(url, settings, lambda s: projects_service.revoke_key(s, key_id)):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@sandbox_app.command("build")
def sandbox_build(
    base: Annotated[
        str | None,
        typer.Option(help="Base image (default: python:3.11-slim-bookworm, or a local one)."),
    ] = None,
    local_base: Annotated[
        bool,
        typer.Option(
            "--local-base", help="Make the base from Debian packages (no registry needed)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild an existing image.")] = False,
) -> None:
    """Build the sandbox image (skipped when it is built from this sandbox-image/), showing
    the build's progress."""
    from assistd.sandbox.build import build
    from assistd.sandbox.containers import SandboxUnavailable

    image = Settings().sandbox.image
    try:
        build(image, base=base, local_base=local_base, force=force, say=typer.echo)
    except (SandboxUnavailable, RuntimeError, OSError) as exc:
        typer.echo(f"assistd: {exc}", err=True)
        raise typer.Exit(1) from exc
    except subprocess.CalledProcessError as exc:
        typer.echo(f"assistd: making the base image failed ({exc})", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    """Entry point of the ``assistd`` script."""
    app()
