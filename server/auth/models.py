from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class ServerSecret(Base):
    """A secret every replica shares, made once by the first one to start (server/pseudonyms.py)."""

    __tablename__ = "server_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tenant(Base):
    __tablename__ = "tenant"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_key"
    # An erasure revokes the keys bound to the user.
    __table_args__ = (Index("ix_api_key_tenant_id_bound_user", "tenant_id", "bound_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    # sha256 of the secret: keys are 256-bit random tokens, so a slow KDF buys nothing.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(64))  # comma-separated: chat, admin, profile
    bound_user: Mapped[str | None] = mapped_column(String(256), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # From then on the key is refused (401), as if revoked; None: it never expires.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # The key's own limits per minute (server/ratelimit.py); None: the gateway's
    # RLPA_RATE_LIMIT_PER_MINUTE / RLPA_RATE_LIMIT_TOKENS_PER_MINUTE, 0: none.
    rpm_limit: Mapped[int | None] = mapped_column(default=None)
    tpm_limit: Mapped[int | None] = mapped_column(default=None)
    # When a request last authenticated with it, to within RLPA_USAGE_FLUSH_S (server/usage).
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s for s in self.scopes.split(",") if s)


class AuditEvent(Base):
    """Who changed what, newest read first. Never holds profile text, and never an erased
    user's id: an erasure hashes the target of every event about that user."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_tenant_id_id", "tenant_id", "id"),
        # An erasure pseudonymizes the user's events.
        Index("ix_audit_event_tenant_id_target", "tenant_id", "target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # No foreign key: revoking or deleting a key must never touch the history it made.
    actor_key_id: Mapped[int | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
