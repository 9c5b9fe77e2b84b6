"""The ``assistd`` command line: serve, worker, migrate, keys, sandbox."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import dotenv
import typer
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from assistd import __version__
from assistd.core import logs, startup
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
from assistd.core.migrate import current_revisions, head_revisions, upgrade_to_head
from assistd.core.runtime import tune_gc
from assistd.projects import service as projects_service

_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="assistd: a self-hosted server for the OpenAI Assistants API (v2).",
    no_args_is_help=True,
    add_completion=False,
    context_settings=_HELP,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True, context_settings=_HELP)
app.add_typer(keys_app, name="keys")
sandbox_app = typer.Typer(
    help="The code_interpreter sandbox image.", no_args_is_help=True, context_settings=_HELP
)
app.add_typer(sandbox_app, name="sandbox")

log = logging.getLogger("assistd.cli")
T = TypeVar("T")
_DEFAULTS = Settings.model_fields
_HOST: str = _DEFAULTS["host"].default
_PORT: int = _DEFAULTS["port"].default
_PROCESSES: int = _DEFAULTS["processes"].default


class LogFormat(enum.StrEnum):
    """``--log-format``: ``auto`` is text on a terminal, else JSON lines."""

    auto = "auto"
    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        envvar="ASSISTD_LOG_FORMAT",
        help="Log lines as readable text or JSON (auto: text on a terminal, else JSON).",
    ),
]


_FORMATS: dict[LogFormat, logs.LogFormat] = {
    LogFormat.auto: "auto",
    LogFormat.text: "text",
    LogFormat.json: "json",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"assistd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """assistd: a self-hosted server for the OpenAI Assistants API (v2).

    Settings come from ASSISTD_* environment variables and from a .env file in the current
    directory (the environment wins); the model backend from the openai SDK's variables.
    """
    # Before the command's options are parsed, so their environment variables see it too.
    dotenv.load_dotenv(Path.cwd() / ".env", override=False)


def _settings(fmt: LogFormat | None = None) -> Settings:
    """The settings, with logging set up, and what is wrong with them told in one line
    each (exit status 2 when they cannot be read at all)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        given = os.environ.get("ASSISTD_LOG_FORMAT", "").lower()
        fallback = LogFormat(given) if given in LogFormat.__members__ else LogFormat.auto
        logs.setup("info", _FORMATS[fmt or fallback])
        for error in exc.errors():
            name = "ASSISTD_" + "__".join(str(part) for part in error["loc"]).upper()
            log.error("invalid setting %s: %s", name, error["msg"])
        raise typer.Exit(2) from None
    if fmt is not None:
        settings.log_format = _FORMATS[fmt]
    logs.setup(settings.log_level, settings.log_format)
    for name, close in startup.unknown_settings(os.environ):
        hint = f"; did you mean {close}?" if close else ""
        log.warning("unknown setting %s is ignored%s", name, hint)
    return settings


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
    """Resolve the database (starting the embedded one if needed) and migrate it; a database
    that cannot be reached or used ends the command with one line saying why."""
    raw = settings.database_url.get_secret_value() if settings.database_url else None
    try:
        url, embedded = database_url(settings)
        before = current_revisions(url)
        upgrade_to_head(url)
    except (sa_exc.DBAPIError, sa_exc.ArgumentError, OSError) as exc:
        where = startup.masked(raw) if raw else "(embedded)"
        reason = startup.cause(exc)
        secret = startup.password(raw) if raw else None
        if secret:
            reason = reason.replace(secret, "***")
        log.error("cannot use the database %s: %s", where, reason)
        raise typer.Exit(1) from None
    heads = head_revisions(url)
    if before != heads:
        # Alembic's own lines (one per revision, with its docstring) are quieted in logs.
        log.info(
            "database migrated from %s to %s",
            ", ".join(sorted(before)) or "an empty schema",
            ", ".join(sorted(heads)),
        )
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


def _say(message: str, **fields: object) -> None:
    """A line for the person starting the server: printed, or logged when logs are JSON (so
    every line of the output parses)."""
    if logs.json_output():
        log.info("%s", message, extra={"fields": fields})
    else:
        typer.echo(f"assistd: {message}")


def _check_backend(settings: Settings) -> None:
    if settings.models.models_file is not None:
        # A bad route stops the start, rather than failing each run that uses it later.
        from assistd.llm.chat import ModelsFileError, router_from_environment

        try:
            router_from_environment(models_file=settings.models.models_file)
        except ModelsFileError as exc:
            log.error("%s", exc)
            raise typer.Exit(2) from None
    problem = startup.backend_problem(os.environ, settings)
    if problem is not None:
        log.warning("%s", problem)


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """Server processes write their metrics to files in a directory of their own, fresh for
    this run, so ``/metrics`` adds up every process (prometheus_client's multiprocess mode)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        yield
        return
    path = tempfile.mkdtemp(prefix="assistd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="ASSISTD_HOST", help="Interface to bind.")] = _HOST,
    port: Annotated[int, typer.Option(envvar="ASSISTD_PORT", help="Port to bind.")] = _PORT,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            envvar="ASSISTD_RUN_WORKER",
            help="Also execute runs in this process.",
        ),
    ] = True,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            envvar="ASSISTD_PROCESSES",
            help="Server processes sharing the port, each with its own worker (one per CPU "
            "uses a many-core machine).",
        ),
    ] = _PROCESSES,
    log_format: LogFormatOption = LogFormat.auto,
) -> None:
    """Run the API server (migrating the database first); by default it also executes runs."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = _settings(log_format)
    settings.host, settings.port, settings.processes = host, port, processes
    settings.run_worker = worker
    _check_backend(settings)
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
            if logs.json_output():
                _say(
                    f"new embedded database: a first API key for project '{new.project_name}' "
                    "(shown once, store it now)",
                    api_key=new.secret,
                    project=new.project_name,
                )
            else:
                _say("new embedded database, created a first API key.")
                _print_key(new.secret, new.project_name)
    import uvicorn

    _say(f"serving on http://{settings.host}:{settings.port}/v1")
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
        _say(f"{settings.processes} server processes")
        from assistd.web import processes as server_processes

        with _shared_metrics():
            if not server_processes.balanced():
                uvicorn.run(
                    server_processes.APP, factory=True, workers=settings.processes, **options
                )
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
    os.environ["ASSISTD_LOG_FORMAT"] = "json" if logs.json_output() else "text"


@app.command("worker")
def worker_command(log_format: LogFormatOption = LogFormat.auto) -> None:
    """Execute runs (any number of workers may share one database)."""
    settings = _settings(log_format)
    _check_backend(settings)
    url, _ = _prepare(settings)

    async def main() -> None:
        from assistd.core.channels import EVENTS_CHANNEL, QUEUE_CHANNEL
        from assistd.core.db import libpq_dsn
        from assistd.core.notify import Listener
        from assistd.engine.executor import build_engine_deps
        from assistd.files.storage import make_storage
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

    _say("worker started")
    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Apply database migrations up to head."""
    settings = _settings()
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
    settings = _settings()
    url, _ = _prepare(settings)
    new = _with_session(url, settings, lambda s: projects_service.create_key(s, project, name=name))
    _print_key(new.secret, new.project_name)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (hints only; secrets are never stored), tab-separated under a header."""
    settings = _settings()
    url, _ = _prepare(settings)
    rows = _with_session(url, settings, projects_service.list_keys)
    typer.echo("ID\tPROJECT\tHINT\tSTATE\tNAME")
    for key, project in rows:
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{project}\t{key.key_hint}\t{state}\t{key.name or ''}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (key_…).")]) -> None:
    """Revoke an API key by id."""
    settings = _settings()
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
