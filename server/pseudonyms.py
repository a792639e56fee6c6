"""Keyed pseudonyms of end-user ids, for every place that must tell users apart without naming
them: an erased user's audit events, the erasure fence, profile cache keys, the access log.

A plain digest of an id names its user to anyone who can guess the id (hash the guess, compare).
These are HMAC-SHA256 under a key every replica shares: RLPA_PSEUDONYM_KEY when set (kept out of
the database), else a random key the first replica to start stores in `server_secret`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import repository
from server.db import transaction

SECRET_NAME = "pseudonym_key"
PREFIX = "hmac:"


class Pseudonyms:
    """Made before the database is reachable; `load` gives it its key at start-up."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key

    async def load(
        self, sessionmaker: async_sessionmaker[AsyncSession], configured: SecretStr | None
    ) -> None:
        if configured is not None:
            self._key = configured.get_secret_value().encode()
            return
        # Every replica starting at once proposes a key; the first one stored is everyone's.
        async with transaction(sessionmaker) as session:
            stored = await repository.ensure_secret(session, SECRET_NAME, secrets.token_hex(32))
        self._key = stored.encode()

    def of(self, user: str) -> str:
        """32 hex digits that stand for `user` (within a tenant's scope, wherever it is used)."""
        if self._key is None:
            raise RuntimeError("pseudonyms used before the key was loaded")
        data = user.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def label(self, user: str) -> str:
        """The pseudonym as an audit target, marked as one."""
        return PREFIX + self.of(user)
