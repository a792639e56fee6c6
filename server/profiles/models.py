from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class EndUser(Base):
    """On PostgreSQL with pg_trgm, a trigram index on lower(external_id) serves user search
    (migration 0004; migrations/env.py keeps it out of the model comparison)."""

    __tablename__ = "end_user"
    # Ids are never reused (SQLite would reuse a deleted one): an erased user's in-flight turn
    # must find no row, never a newer user's.
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(256))
    personalization: Mapped[bool] = mapped_column(default=True)
    current_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProfileVersion(Base):
    __tablename__ = "profile_version"
    __table_args__ = (UniqueConstraint("end_user_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    end_user_id: Mapped[int] = mapped_column(ForeignKey("end_user.id", ondelete="CASCADE"))
    version: Mapped[int]
    traits: Mapped[list[str]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str | None] = mapped_column(String(256), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # The API key of an admin edit; no foreign key, so that revoking or deleting keys never
    # touches history. None for chat turns, with authentication off and from the CLI.
    actor_key_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
