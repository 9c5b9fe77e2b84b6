"""Settings: one nested object built from ``ASSISTD_*`` environment variables.

Nested groups use ``__`` as the delimiter, e.g. ``ASSISTD_STORAGE__DIR``. Settings are built
at the edges (CLI, app factory, tests) and passed down; nothing reads the environment later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assistd"


class StorageSettings(BaseModel):
    """Where uploaded file bytes live."""

    backend: str = "local"
    dir: Path | None = None
    """Directory for the local backend; defaults to ``<data_dir>/files``."""


class LimitSettings(BaseModel):
    """Request limits."""

    max_upload_bytes: int = 512 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    """Any other request body (JSON): refused with 413 from its ``Content-Length``, or once a
    chunked one has streamed past it. Fits a thread of 32 messages at their length limit."""
    max_upload_part_bytes: int = 64 * 1024 * 1024
    """One part of an ``/uploads`` upload (OpenAI's limit)."""
    max_chunked_upload_bytes: int = 8 * 1024 * 1024 * 1024
    """A whole ``/uploads`` upload, all parts together (OpenAI's limit)."""


class RunSettings(BaseModel):
    """Run lifecycle."""

    expires_seconds: int = 600
    """A queued or executing run expires this long after creation."""
    requires_action_seconds: int = 600
    """A run waiting for tool outputs expires this long after it started waiting."""
    file_search_wait_seconds: float = 60.0
    """A file_search call waits this long for files of its vector stores still being
    ingested (the hosted service waited up to 60 s for the thread's; this covers the
    assistant's stores too)."""
    event_retention_seconds: int = 3600
    """Stream events of finished runs are kept this long (replays, slow readers)."""
    response_retention_days: int = 30
    """Stored responses are deleted this long after creation (OpenAI keeps them 30 days);
    a response with ``store: false`` goes a minute after it ended."""


class WorkerSettings(BaseModel):
    """The run worker (in ``serve`` and in ``assistd worker``)."""

    concurrency: int = 512
    """Runs executed at once by one worker process (they mostly wait on the model)."""
    heartbeat_seconds: float = 2.0
    lease_seconds: float = 15.0
    """A run whose worker has not heartbeaten for this long is failed by the reaper."""
    poll_seconds: float = 1.0
    """Fallback polling interval when no NOTIFY arrives."""
    reap_seconds: float = 2.0
    shutdown_grace_seconds: float = 30.0
    ingest_concurrency: int = 2
    """Files ingested at once by one worker (parsing and local embedding use the CPU; each
    has a parser process of its own)."""


class MetricsSettings(BaseModel):
    """Who may read ``GET /metrics``."""

    access: Literal["local", "token", "open", "off"] = "local"
    """``local``: clients on the loopback interface, and anyone with ``token`` when one is
    set (behind a reverse proxy every client looks local: set a token and ``token``);
    ``token``: only ``Authorization: Bearer <token>``; ``open``: anyone; ``off``: 404."""
    token: SecretStr | None = None
    per_project: bool = False
    """Also report runs by project (``assistd_project_runs``), naming every project."""


class IngestSettings(BaseModel):
    """File ingestion for vector stores: parsing runs in a child process with these limits,
    and a file breaking one ends ``failed`` (``invalid_file``) with the limit named."""

    max_chars: int = 20_000_000
    """Characters of text one file may hold."""
    max_page_chars: int = 1_000_000
    """Characters on one PDF page (drawn inside its box or not)."""
    max_part_bytes: int = 64 * 1024 * 1024
    """Unpacked size of each part (XML or media) of a DOCX, PPTX or XLSX."""
    memory_bytes: int = 192 * 1024 * 1024
    """Memory a parser process may take for one file, on top of what it holds once started
    (its ``RLIMIT_AS``); a text at ``max_chars`` needs about 150 MiB."""
    timeout_seconds: float = 120.0
    """Time to parse and chunk one file; then its parser process is killed."""


class ModelSettings(BaseModel):
    """Model backends (defaults come from the openai SDK's own environment variables)."""

    models_file: Path | None = None
    """TOML/JSON file with named backends and model routes (see llm/chat.py)."""
    max_retries: int = 3
    timeout_seconds: float = 600.0


class SearchSettings(BaseModel):
    """Vector store search."""

    rewrite_model: str = "gpt-4o-mini"
    """The model that rewrites queries when a search asks for ``rewrite_query``."""


class SandboxSettings(BaseModel):
    """The code_interpreter sandbox: one hardened Docker container per thread.

    The Docker engine is found the docker SDK's way (``DOCKER_HOST``, else the local socket).
    """

    image: str = "assistd-sandbox:latest"
    """Built by ``assistd sandbox build`` from ``sandbox-image/``."""
    exec_timeout_seconds: float = 60.0
    """Per execution; then the kernel is interrupted (the session survives)."""
    idle_seconds: float = 3600.0
    """A thread's session is removed after this long without use."""
    pool_size: int = 1
    """Pre-started containers (kernel running) handed to threads on their first call."""
    memory: str = "1g"
    cpus: float = 1.0
    pids_limit: int = 128
    tmp_size: str = "64m"
    data_size: str = "512m"
    """Size of /mnt/data (a tmpfs)."""
    runtime: str | None = None
    """An alternative OCI runtime such as ``runsc`` (gVisor), if the engine has it."""
    instance: str = "default"
    """Label value (``io.assistd.instance``) on every container, to tell deployments that
    share one engine apart."""
    start_timeout_seconds: float = 90.0
    max_output_chars: int = 20_000
    """Tool output text the model sees (the step keeps more)."""
    max_file_bytes: int = 64 * 1024 * 1024
    """Largest file one execution brings back from /mnt/data (larger ones are listed as
    skipped, with the reason)."""
    max_files_bytes: int = 128 * 1024 * 1024
    """All files one execution brings back, together."""


KNOWN_DIMENSIONS = {
    "local": 384,
    "local:all-MiniLM-L6-v2": 384,
    "local:wordllama": 256,
    "openai:text-embedding-3-small": 1536,
    "openai:text-embedding-3-large": 3072,
    "openai:text-embedding-ada-002": 1536,
}


class EmbeddingSettings(BaseModel):
    """The embedding model new vector stores use (a store keeps the model it was made with)."""

    model: str = "local:wordllama"
    """``local:wordllama`` (static 256-d embeddings, offline: ~17x MiniLM's ingestion speed on
    a CPU; the default), ``local:all-MiniLM-L6-v2`` (alias ``local``: a transformer on
    onnxruntime, offline, better semantic matches, ~6 PDF pages/s on 2 cores) or
    ``openai:<model>`` / ``azure:<deployment>`` (the backend's embeddings endpoint)."""
    dimensions: int | None = None
    """Needed for ``openai:`` models not in the built-in table."""

    @property
    def dimension(self) -> int:
        """The vector size of ``model``."""
        if self.dimensions is not None:
            return self.dimensions
        if self.model in KNOWN_DIMENSIONS:
            return KNOWN_DIMENSIONS[self.model]
        raise ValueError(f"set ASSISTD_EMBEDDINGS__DIMENSIONS for the model {self.model!r}")


class Settings(BaseSettings):
    """Everything assistd can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTD_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: SecretStr | None = None
    """Postgres URL (``postgresql://…``). Unset: an embedded Postgres under ``data_dir``."""
    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 16
    """Connections per pool, opened as needed: ``serve`` has three (reads, writes, and the
    hand-written statements of the run paths: ``core.db.DirectPool``), ``worker`` two."""
    db_max_overflow: int = 0
    """Extra write connections opened under bursts and closed again after. None by default:
    a burst then waits for a pooled connection, which costs less than opening one (a new
    Postgres backend and its caches: 500 concurrent runs used ~20% less Postgres CPU without
    them, measured).

    The defaults keep ``serve`` (3 x 16 + 1 LISTEN = 49) plus one ``worker`` (2 x 16 + 1)
    within the embedded Postgres's ``max_connections = 100``, with room for tools and tests.
    """
    api_key_cache_seconds: float = 10.0
    """How long a server trusts a key it looked up. Revoking a key notifies every server at
    once; this bounds a revoked key's life only if that notification is lost."""
    poll_after_ms: int = 250
    """``openai-poll-after-ms`` hint on run retrieval (the SDK's poll helpers sleep this)."""
    run_worker: bool = True
    """``serve`` also runs an in-process worker (``--no-worker`` turns it off)."""
    processes: int = Field(default=1, ge=1, le=64)
    """``serve``'s server processes (``--processes``), each with its own in-process worker:
    one Python process runs on one CPU, so a many-core machine serves more with several.
    The connection pools above are the whole server's, split between its processes."""
    log_level: str = "info"
    log_format: Literal["auto", "text", "json"] = "auto"
    """``auto``: readable text when stderr is a terminal, else JSON lines (``--log-format``)."""
    storage: StorageSettings = StorageSettings()
    runs: RunSettings = RunSettings()
    worker: WorkerSettings = WorkerSettings()
    ingest: IngestSettings = IngestSettings()
    models: ModelSettings = ModelSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    limits: LimitSettings = LimitSettings()
    sandbox: SandboxSettings = SandboxSettings()
    search: SearchSettings = SearchSettings()
    metrics: MetricsSettings = MetricsSettings()

    @property
    def storage_dir(self) -> Path:
        """The local file storage directory."""
        return self.storage.dir or self.data_dir / "files"

    @property
    def pgdata_dir(self) -> Path:
        """The embedded Postgres data directory."""
        return self.data_dir / "pgdata"
