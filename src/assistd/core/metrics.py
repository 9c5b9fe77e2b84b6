"""Prometheus metrics (``GET /metrics``).

Counters and histograms are observed where things happen (HTTP middleware, the run loop, the
model backends, ingestion); figures that live in the database (queue depth, runs by status)
are read at scrape time, so every API process reports them whichever process ran the work.
Under ``serve --processes N`` each process writes its figures to files the scrape adds up
(``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` before they start).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "assistd_http_requests_total",
    "HTTP requests by route and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "assistd_http_request_seconds", "HTTP request latency by route.", ["method", "route"]
)
RUNS_FINISHED = Counter(
    "assistd_runs_finished_total", "Runs that reached a resting status in this process.", ["status"]
)
RUN_SECONDS = Histogram(
    "assistd_run_seconds",
    "Execution time of a run (claim to resting status) by outcome.",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TOKENS = Counter(
    "assistd_tokens",
    "Model tokens used by runs and chat completions, by model and type (prompt or completion).",
    ["model", "type"],
)
PROJECT_TOKENS = Counter(
    "assistd_project_tokens",
    "Model tokens used by runs and chat completions, by project, model and type "
    "(ASSISTD_METRICS__PER_PROJECT).",
    ["project", "model", "type"],
    registry=None,
)
"""Counted and shown only with ``ASSISTD_METRICS__PER_PROJECT`` (``web.metrics``): off, no
figure names a project, not even an empty one."""
BACKEND_SECONDS = Histogram(
    "assistd_backend_request_seconds",
    "Model backend calls: time to the end of the streamed completion.",
    ["model"],
)
BACKEND_FIRST_TOKEN = Histogram(
    "assistd_backend_first_chunk_seconds",
    "Model backend calls: time to the first chunk.",
    ["model"],
)
BACKEND_ERRORS = Counter(
    "assistd_backend_errors_total", "Model backend calls that failed for good.", ["model", "code"]
)
INGESTED_FILES = Counter(
    "assistd_ingested_files_total", "Files ingested into vector stores by outcome.", ["status"]
)
SANDBOX_EXECUTIONS = Counter(
    "assistd_sandbox_executions_total",
    "code_interpreter executions by outcome (ok, error, timed_out, sandbox_replaced, unavailable).",
    ["outcome"],
)
SANDBOX_SESSIONS = Gauge(
    "assistd_sandbox_sessions",
    "Sandbox containers this process holds, by role (session or warm pool).",
    ["role"],
    multiprocess_mode="livesum",
)


def count_tokens(model: str, project: str | None, prompt: int, completion: int) -> None:
    """Add a completion's tokens to ``TOKENS``, and to ``PROJECT_TOKENS`` when ``project``
    is given (only with ``ASSISTD_METRICS__PER_PROJECT``)."""
    for kind, count in (("prompt", prompt), ("completion", completion)):
        if count and model:
            TOKENS.labels(model, kind).inc(count)
            if project is not None:
                PROJECT_TOKENS.labels(project, model, kind).inc(count)
