"""A chat turn's side of the profile store: read the current state (cache first), apply the turn's
change, order a user's write-behind writes, note that the user was seen.

Each method is its own short transaction; the cache is updated only after the commit. The admin
operations (server/profiles/service.py) build on the same reads, locks and writes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import metrics, rlpa
from server.auth import repository as auth_repository
from server.cache import ProfileCache, cache_key
from server.db import autocommit, transaction, utcnow
from server.errors import ProfileWriteError, ProfileWriteUnknownError
from server.profiles import repository
from server.profiles.state import ProfileState
from server.pseudonyms import Pseudonyms

TOUCH_EVERY = timedelta(seconds=60)
# How often a turn looks again for a write-behind write of its user's still in flight elsewhere.
WRITE_POLL_S = 0.005


class TurnProfiles:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cache: ProfileCache,
        pseudonyms: Pseudonyms,
    ):
        self._sessionmaker = sessionmaker
        self.cache = cache
        self.pseudonyms = pseudonyms

    def _key(self, tenant_id: int, user: str) -> str:
        return cache_key(tenant_id, self.pseudonyms.of(user))

    async def get_state(self, tenant_id: int, user: str) -> ProfileState | None:
        """Current profile for a chat turn, cache first. None for a user never seen."""
        cached = await self.cache.get(self._key(tenant_id, user))
        if cached is not None and cached.user_id:
            metrics.CACHE_HITS.inc()
            return cached
        metrics.CACHE_MISSES.inc()
        return await self._load(tenant_id, user, create=False)

    async def open(
        self, tenant_id: int, user: str, arrived_at: datetime | None = None
    ) -> ProfileState | None:
        """The state a chat turn starts from, creating the user on their first turn so that the
        turn is tied to one user row (an erase during the turn then removes that row).

        None when the user was erased after the turn `arrived_at`: a request already received
        when the erasure committed must not bring the user back, however late it reads.
        """
        state = await self.get_state(tenant_id, user)
        if state is not None:
            return state
        return await self._load(tenant_id, user, create=True, arrived_at=arrived_at)

    async def _load(
        self, tenant_id: int, user: str, *, create: bool, arrived_at: datetime | None = None
    ) -> ProfileState | None:
        """The current state from the database (the user created first if `create`), cached."""
        read_at = time.monotonic()
        if not create:  # one statement, outside a transaction: a read needs no BEGIN and COMMIT
            async with autocommit(self._sessionmaker) as connection:
                found = await repository.get_current(connection, tenant_id, user)
            if found is None:
                return None
            user_id, version, personalization, traits, source, created_at = found
            state = ProfileState(
                version=version,
                traits=traits or [],
                personalization=personalization,
                source=source,
                updated_at=created_at,
                user_id=user_id,
            )
            await self._cache_put(tenant_id, user, state, read_at)
            return state
        async with transaction(self._sessionmaker) as session:
            row = await repository.get_user(session, tenant_id, user)
            if row is None:
                if arrived_at is not None and await self._erased_since(
                    session, tenant_id, user, arrived_at
                ):
                    return None
                row = await repository.ensure_user(session, tenant_id, user)
            current = await repository.get_version(session, row.id, row.current_version)
        state = ProfileState(
            version=row.current_version,
            traits=current.traits if current else [],
            personalization=row.personalization,
            source=current.source if current else None,
            updated_at=current.created_at if current else None,
            user_id=row.id,
        )
        await self._cache_put(tenant_id, user, state, read_at)
        return state

    async def _erased_since(
        self, session: AsyncSession, tenant_id: int, user: str, since: datetime
    ) -> bool:
        label = self.pseudonyms.label(user)
        return await auth_repository.erased_since(session, tenant_id, label, since)

    async def await_writes(self, tenant_id: int, user: str, bound_s: float) -> None:
        """Wait (at most `bound_s`) while a write-behind write of this user's is in flight on
        any replica: a turn reads what the user's earlier, answered turns wrote."""
        key = self._key(tenant_id, user)
        if not await self.cache.writes_pending(key):
            return
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            await asyncio.sleep(WRITE_POLL_S)
            if not await self.cache.writes_pending(key):
                metrics.WRITE_WAITS.labels("settled").inc()
                return
        metrics.WRITE_WAITS.labels("timed_out").inc()

    async def begin_write(self, tenant_id: int, user: str, token: str, ttl_s: float) -> bool:
        return await self.cache.begin_write(self._key(tenant_id, user), token, ttl_s)

    async def end_write(self, tenant_id: int, user: str, token: str) -> None:
        await self.cache.end_write(self._key(tenant_id, user), token)

    async def _cache_put(
        self, tenant_id: int, user: str, state: ProfileState, read_at: float
    ) -> None:
        """Cache `state`, read (or committed) at monotonic time `read_at`."""
        await self.cache.put(self._key(tenant_id, user), state, read_at=read_at)

    async def _lock(
        self, session: AsyncSession, user_id: int
    ) -> tuple[ProfileState, datetime] | None:
        """The user's latest version and when the user row was made, the row locked until
        commit; None if erased."""
        locked = await repository.lock_user(session, user_id)
        if locked is None:
            return None
        current, personalization, created_at = locked
        latest = await repository.get_version(session, user_id, current)
        state = ProfileState(
            version=current,
            traits=latest.traits if latest else [],
            personalization=personalization,
            source=latest.source if latest else None,
            updated_at=latest.created_at if latest else None,
            user_id=user_id,
        )
        return state, created_at

    async def _store(
        self,
        session: AsyncSession,
        current: ProfileState,
        traits: list[str],
        source: str,
        *,
        model_name: str | None = None,
        request_id: str | None = None,
        actor_key_id: int | None = None,
    ) -> ProfileState:
        """`traits` as the next version after the locked `current`, unless nothing changed."""
        if traits == current.traits:
            return current
        number = await repository.allocate_version(session, current.user_id)
        version = await repository.add_version(
            session, current.user_id, number, traits, source, model_name, request_id, actor_key_id
        )
        return replace(
            current, version=number, traits=traits, source=source, updated_at=version.created_at
        )

    async def apply_change(
        self,
        tenant_id: int,
        user: str,
        read: ProfileState,
        change: rlpa.ProfileChange,
        *,
        request_id: str | None = None,
        arrived_at: datetime | None = None,
        model_name: str | None = None,
        source: str = "model",
    ) -> ProfileState | None:
        """Apply a chat turn's change to the user's latest version, in one transaction.

        Returns the resulting state (a new version only if the change changed anything), or None
        when the turn must not write: the user row it read is gone (erased while the turn ran),
        or the row was made after the turn arrived and the user was erased in between. An
        opted-out user gets no new version; a request id that already wrote a version (a retry)
        writes none. A change that changes nothing against what the turn read needs no database:
        a turn that only restates the profile is answered while the database is down.

        Raises ProfileWriteError when nothing reached the database, ProfileWriteUnknownError
        when it may have been committed (a retry with the same request id is then safe).

        `source` is "model", or "user" for a memory command the user gave in chat
        (server/chat/memory_commands.py).

        The common case, nobody wrote since the turn read, is one statement (PostgreSQL); the
        others lock the user row and merge into what is newest.
        """
        if change.apply(read.traits) == read.traits:
            return read
        arrived_at = arrived_at or utcnow()
        sent = False
        try:
            if read.personalization:
                read_at = time.monotonic()
                async with autocommit(self._sessionmaker) as connection:
                    sent = True
                    appended = await repository.append_if_current(
                        connection,
                        read.user_id,
                        read.version,
                        change.apply(read.traits),
                        source,
                        model_name,
                        request_id,
                        arrived_at,
                    )
                if appended is not None:
                    number, created_at = appended
                    merged = change.apply(read.traits)
                    state = replace(
                        read, version=number, traits=merged, source=source, updated_at=created_at
                    )
                    metrics.PROFILE_WRITES.labels(source).inc()
                    await self._cache_put(tenant_id, user, state, read_at)
                    return state
            sent = False
            return await self._apply_locked(
                tenant_id, user, read, change, request_id, arrived_at, model_name, source
            )
        except (ProfileWriteError, asyncio.CancelledError):
            raise
        except Exception as exc:
            error = ProfileWriteUnknownError() if sent else ProfileWriteError()
            raise error from exc

    async def _apply_locked(
        self,
        tenant_id: int,
        user: str,
        read: ProfileState,
        change: rlpa.ProfileChange,
        request_id: str | None,
        arrived_at: datetime,
        model_name: str | None,
        source: str,
    ) -> ProfileState | None:
        """apply_change's path under the user's row lock."""
        read_at = time.monotonic()
        written = False
        try:
            async with transaction(self._sessionmaker) as session:
                await session.connection()  # nothing was sent before this: not stored
                written = True
                locked = await self._lock(session, read.user_id)
                if locked is None:
                    metrics.ERASED_WRITES_DROPPED.inc()
                    return None
                current, created_at = locked
                if created_at > arrived_at and await self._erased_since(
                    session, tenant_id, user, arrived_at
                ):
                    metrics.ERASED_WRITES_DROPPED.inc()
                    return None
                if request_id is not None and await repository.version_of_request(
                    session, read.user_id, request_id
                ):
                    return current  # a retry of a turn whose change is stored
                merged = change.apply(current.traits) if current.personalization else current.traits
                state = await self._store(
                    session, current, merged, source, model_name=model_name, request_id=request_id
                )
        except Exception as exc:
            error = ProfileWriteUnknownError() if written else ProfileWriteError()
            raise error from exc
        if state is not current:
            metrics.PROFILE_WRITES.labels(source).inc()
            await self._cache_put(tenant_id, user, state, read_at)
        return state

    async def touch(self, tenant_id: int, user: str) -> None:
        async with transaction(self._sessionmaker) as session:
            await repository.touch(session, tenant_id, user, utcnow() - TOUCH_EVERY)
