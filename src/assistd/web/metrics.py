"""``GET /metrics``, and counting requests by route template."""

from __future__ import annotations

import os
import secrets

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from assistd.core.config import MetricsSettings
from assistd.core.metrics import HTTP_LATENCY, HTTP_REQUESTS, PROJECT_TOKENS
from assistd.models import Run
from assistd.web.errors import error_response


def record_request(scope: Scope, status: int, seconds: float) -> None:
    """Count a request and its latency by method, route template and status."""
    route = _route_template(scope)
    method = scope["method"]
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (the router records the route in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return "unmatched"
    # Routers included under a prefix (``/v1``, ``/openai``) record their own template;
    # the prefix is the part of the request path in front of what the template matched.
    request_path = str(scope.get("path", ""))
    regex = getattr(route, "path_regex", None)
    for i, char in enumerate(request_path):
        if char == "/" and regex is not None and regex.match(request_path[i:]):
            return request_path[:i] + str(path)
    return str(path)


class DatabaseCollector(Collector):
    """Queue depth and runs by status, read from Postgres at scrape time (by project too
    when ``per_project``: it names every project to whoever reads ``/metrics``), and then
    the tokens by project as well."""

    def __init__(self, engine: Engine, per_project: bool = False) -> None:
        self.engine = engine
        self.per_project = per_project

    def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's signature
        """Yield the gauges (empty when the database does not answer)."""
        if self.per_project and not _shared():  # shared: every process's come from files
            yield from PROJECT_TOKENS.collect()
        runs = GaugeMetricFamily(
            "assistd_runs", "Runs in the database by status.", labels=["status"]
        )
        depth = GaugeMetricFamily("assistd_queue_depth", "Runs waiting for a worker.")
        pending = GaugeMetricFamily("assistd_ingest_queue_depth", "Files waiting to be ingested.")
        by_project = GaugeMetricFamily(
            "assistd_project_runs",
            "Runs in the database by project and status.",
            labels=["project", "status"],
        )
        try:
            with self.engine.connect() as conn:
                for status, count in conn.execute(
                    select(Run.status, func.count()).group_by(Run.status)
                ).tuples():
                    runs.add_metric([status], count)
                    if status == "queued":
                        depth.add_metric([], count)
                waiting = conn.execute(
                    text("SELECT count(*) FROM vector_store_files WHERE status = 'in_progress'")
                ).scalar_one()
                pending.add_metric([], waiting)
                if self.per_project:
                    for project, status, count in conn.execute(
                        select(Run.project_id, Run.status, func.count()).group_by(
                            Run.project_id, Run.status
                        )
                    ).tuples():
                        by_project.add_metric([project, status], count)
        except Exception:  # a scrape must never fail because the database is away
            return
        if not depth.samples:
            depth.add_metric([], 0)
        yield runs
        yield depth
        yield pending
        if self.per_project:
            yield by_project


_LOOPBACK = ("127.", "::1", "::ffff:127.")


def metrics_allowed(request: Request, settings: MetricsSettings) -> bool | None:
    """Whether ``request`` may read the metrics; ``None`` when they are off."""
    if settings.access == "off":
        return None
    if settings.access == "open":
        return True
    token = settings.token.get_secret_value() if settings.token is not None else ""
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return True
    if settings.access == "local":
        host = request.client.host if request.client is not None else ""
        return host.startswith(_LOOPBACK) or host == "localhost"
    return False


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of the server's metrics, to whom ``metrics.access`` lets
    read it."""
    import anyio

    allowed = metrics_allowed(request, request.app.state.settings.metrics)
    if allowed is None:
        return error_response(404, f"Invalid URL ({request.method} {request.url.path})")
    if not allowed:
        return error_response(
            401,
            "Reading /metrics needs the metrics token (Authorization: Bearer <token>).",
            code="invalid_api_key",
            headers={"www-authenticate": "Bearer"},
        )
    collector: Collector | None = getattr(request.app.state, "db_collector", None)
    body = await anyio.to_thread.run_sync(exposition, collector)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _shared() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition(database: Collector | None) -> bytes:
    """The metrics text: this process's, or every server process's added up when ``serve``
    runs several (each writes its figures under ``PROMETHEUS_MULTIPROC_DIR``)."""
    if not _shared():
        return generate_latest(REGISTRY)
    # Not auto-described: registering must not run the database collector's queries.
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if database is not None:
        registry.register(database)
    return generate_latest(registry)
