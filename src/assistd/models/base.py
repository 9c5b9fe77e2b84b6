"""Declarative base, naming convention and shared column types."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Identity, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        str: String,
    }


def seq_column() -> Mapped[int]:
    """Insertion order: lists sort by it, so ties on ``created_at`` keep their order."""
    return mapped_column(BigInteger, Identity(always=True), nullable=False)
