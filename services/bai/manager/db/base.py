"""Declarative base, naming convention and column helpers shared by all tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JSONB,
        dict[str, str]: JSONB,
        list[str]: JSONB,
        list[Any]: JSONB,
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
    }


def created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now(), nullable=False)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def modified_at() -> Mapped[datetime]:
    # Set in Python on update, not as now() in SQL: a bound value lets the ORM
    # write many changed rows with one executemany instead of a statement each.
    return mapped_column(server_default=func.now(), onupdate=_utc_now, nullable=False)


def new_uuid() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)
