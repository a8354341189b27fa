"""The declarative base, naming convention and column helpers shared by every table.

Constraint names follow a convention (``uq_<table>_<column>``, ``fk_<table>_<column>_<ref>``)
so a violated constraint can name the field at fault in the 4xx it becomes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Float, MetaData, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # The column type of each Python type, named once: a column declares only what is its
    # own (a key, a default, a foreign key, BigInteger), and its nullability is its
    # annotation's (``Mapped[str | None]``). int and bool keep SQLAlchemy's defaults.
    type_annotation_map: ClassVar[dict[Any, TypeEngine[Any]]] = {
        str: Text(),
        float: Float(),
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB(),
    }


def utc_now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def check_in(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_allowed")


class Versioned:
    """A record that buffered updates change: main counts its changes in ``row_version`` (a
    trigger adds one on every UPDATE, whoever makes it), and an update buffered at a site
    names the version it was based on, so a stale one is a conflict, not a silent overwrite
    (ccat_apply_batch)."""

    row_version: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class Timestamped:
    """A record that says when it was made and when it last changed: the last two columns of
    its table, the server's clock unless a write names them."""

    created_at: Mapped[datetime] = utc_now_column()
    updated_at: Mapped[datetime] = utc_now_column()
