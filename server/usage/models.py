from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class UsageHour(Base):
    """One hour of one key's turns for one end user and model: a row per combination seen,
    whose counters each flush adds to (an upsert on the primary key).

    The end user is named only by their keyed pseudonym (server/pseudonyms.py, as in the access
    log), so that no row names a user and an erasure has nothing to remove here. No column may
    be NULL in the key, where NULLs would never conflict: `key_id` 0 is no key (authentication
    off), `user_hash` "" no end user. `key_id` has no foreign key: revoking or deleting a key
    must never touch the usage it made.
    """

    __tablename__ = "usage_hour"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(primary_key=True)  # its start, UTC
    key_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
