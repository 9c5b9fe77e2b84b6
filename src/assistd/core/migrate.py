"""Alembic, driven from code: ``assistd migrate``, ``serve`` start-up and ``/ready``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL


def _migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_migrations"  # wheel installs
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "migrations"  # source checkout / editable install


def alembic_config(url: URL) -> Config:
    """An Alembic config pointing at our migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.attributes["url"] = url.render_as_string(hide_password=False)
    return cfg


def upgrade_to_head(url: URL) -> None:
    """Apply every pending migration."""
    command.upgrade(alembic_config(url), "head")


def head_revisions(url: URL) -> set[str]:
    """The revisions the code expects."""
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def current_revisions(url: URL) -> set[str]:
    """The revisions the database is at."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
