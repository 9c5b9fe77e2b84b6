"""The Alembic migrations build exactly the schema the ORM models describe."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, pool, text
from sqlalchemy.engine import URL

from assistd.core.db import async_url
from assistd.core.migrate import current_revisions, head_revisions, upgrade_to_head
from assistd.models import Base
from tests.conftest import Database


@pytest.fixture(scope="module")
def migrated_url(database: Database) -> URL:
    """A brand-new empty database, upgraded to head."""
    url = async_url(database.new_database(f"migrations_{uuid.uuid4().hex[:12]}"))
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="module")
def engine(migrated_url: URL) -> Iterator[Engine]:
    """A synchronous engine on it (the psycopg dialect works both ways)."""
    eng = create_engine(migrated_url, poolclass=pool.NullPool)
    yield eng
    eng.dispose()


def test_empty_database_upgrades_to_head(migrated_url: URL) -> None:
    heads = head_revisions(migrated_url)
    assert heads
    assert current_revisions(migrated_url) == heads


def test_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as conn, warnings.catch_warnings():
        # Alembic cannot compare expression indexes that name an operator class (the HNSW
        # indexes on ``embedding::halfvec(N)``); it says so and skips them, which is the
        # only thing tolerated here. Their presence is checked below instead.
        warnings.filterwarnings("ignore", r"Expression #1 .*halfvec", UserWarning)
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_hnsw_indexes_exist(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'chunk_embeddings' AND indexdef LIKE '%USING hnsw%'"
            )
        ).all()
    defs = {name: definition for name, definition in rows}
    assert set(defs) == {
        "ix_chunk_embeddings_hnsw_256",
        "ix_chunk_embeddings_hnsw_384",
        "ix_chunk_embeddings_hnsw_1536",
    }
    assert "halfvec(384)" in defs["ix_chunk_embeddings_hnsw_384"]
    assert "halfvec_cosine_ops" in defs["ix_chunk_embeddings_hnsw_384"]


def test_every_model_table_exists(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert {"projects", "api_keys", "assistants", "threads", "messages", "files"} <= tables


def test_vector_extension_installed(engine: Engine) -> None:
    with engine.connect() as conn:
        installed = conn.execute(
            text("SELECT extname FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    assert installed == "vector"


def test_upgrade_is_idempotent(migrated_url: URL) -> None:
    upgrade_to_head(migrated_url)
    assert current_revisions(migrated_url) == head_revisions(migrated_url)
