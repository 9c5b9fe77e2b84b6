"""Settings: one nested object built from ``ASSISTD_*`` environment variables.

Nested groups use ``__`` as the delimiter, e.g. ``ASSISTD_STORAGE__DIR``. Settings are built
at the edges (CLI, app factory, tests) and passed down; nothing reads the environment later.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    db_pool_size: int = 10
    db_max_overflow: int = 20
    api_key_cache_seconds: float = 30.0
    log_level: str = "info"
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()

    @property
    def storage_dir(self) -> Path:
        """The local file storage directory."""
        return self.storage.dir or self.data_dir / "files"

    @property
    def pgdata_dir(self) -> Path:
        """The embedded Postgres data directory."""
        return self.data_dir / "pgdata"
