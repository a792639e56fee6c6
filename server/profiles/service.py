"""Versioned profiles: read through the cache, append-only writes, history, rollback, erasure.

Each method is its own short transaction; the cache is updated only after the commit. Admin
changes record the acting key on the version and an audit event in that same transaction.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import metrics, rlpa
from server.auth import audit
from server.auth import repository as auth_repository
from server.cache import CachedProfile, ProfileCache, cache_key
from server.db import autocommit, transaction, utcnow
from server.errors import (
    BadRequestError,
    NotFoundError,
    ProfileWriteError,
    ProfileWriteUnknownError,
)
from server.profiles import reads, repository
from server.profiles import schemas as s
from server.profiles.models import EndUser
from server.pseudonyms import Pseudonyms

SOURCES = ("model", "admin", "user")
TOUCH_EVERY = timedelta(seconds=60)
# How often a turn looks again for a write-behind write of its user's still in flight elsewhere.
WRITE_POLL_S = 0.005


@dataclass(frozen=True)
class ProfileState:
    """What a chat turn needs: the current traits and whether personalization is on."""

    version: int
    traits: list[str]
    personalization: bool
    source: str | None
    updated_at: datetime | None
    user_id: int  # the end_user row: a turn writes only to the row it read, never to a successor


def _profile_read(user: str, state: ProfileState) -> s.ProfileRead:
    assert state.updated_at is not None  # a state with a version has its time
    return s.ProfileRead(
        user=user,
        version=state.version,
        traits=state.traits,
        updated_at=state.updated_at,
        source=state.source or "model",
    )


def _validate(traits: list[str], param: str = "traits") -> list[str]:
    """Admin input under the profile limits (rlpa.validate_traits), or a 400."""
    try:
        return rlpa.validate_traits(traits)
    except rlpa.TraitError as exc:
        raise BadRequestError(str(exc), param=param, code="invalid_trait") from exc


class ProfileService:
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

    async def _require_user(self, session: AsyncSession, tenant_id: int, user: str) -> EndUser:
        row = await repository.get_user(session, tenant_id, user)
        if row is None:
            raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
        return row

    async def get_state(self, tenant_id: int, user: str) -> ProfileState | None:
        """Current profile for a chat turn, cache first. None for a user never seen."""
        cached = await self.cache.get(self._key(tenant_id, user))
        if cached is not None and cached.user_id:
            metrics.CACHE_HITS.inc()
            updated = datetime.fromisoformat(cached.updated_at) if cached.updated_at else None
            return ProfileState(
                cached.version,
                cached.traits,
                cached.personalization,
                cached.source,
                updated,
                cached.user_id,
            )
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
                version, traits or [], personalization, source, created_at, user_id
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
        updated = state.updated_at.isoformat() if state.updated_at else None
        value = CachedProfile(
            version=state.version,
            traits=state.traits,
            source=state.source,
            updated_at=updated,
            personalization=state.personalization,
            user_id=state.user_id,
        )
        await self.cache.put(self._key(tenant_id, user), value, read_at=read_at)

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
            current,
            latest.traits if latest else [],
            personalization,
            latest.source if latest else None,
            latest.created_at if latest else None,
            user_id,
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
        return ProfileState(
            number, traits, current.personalization, source, version.created_at, current.user_id
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
                        "model",
                        model_name,
                        request_id,
                        arrived_at,
                    )
                if appended is not None:
                    number, created_at = appended
                    merged = change.apply(read.traits)
                    state = ProfileState(number, merged, True, "model", created_at, read.user_id)
                    metrics.PROFILE_WRITES.labels("model").inc()
                    await self._cache_put(tenant_id, user, state, read_at)
                    return state
            sent = False
            return await self._apply_locked(
                tenant_id, user, read, change, request_id, arrived_at, model_name
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
                    session, current, merged, "model", model_name=model_name, request_id=request_id
                )
        except Exception as exc:
            error = ProfileWriteUnknownError() if written else ProfileWriteError()
            raise error from exc
        if state is not current:
            metrics.PROFILE_WRITES.labels("model").inc()
            await self._cache_put(tenant_id, user, state, read_at)
        return state

    async def edit_trait(
        self, tenant_id: int, user: str, trait: str, *, remove: bool, actor: audit.Actor
    ) -> s.ProfileRead:
        """Add or remove one trait as an admin: a change against the latest version under the
        user's lock, as a chat turn writes, so that it merges with turns running meanwhile.

        Adding creates the user, as replacing a profile does; adding a trait already there (in
        any case) returns the profile unchanged. Removing needs the user and the trait.
        """
        (clean,) = _validate([trait], param="trait")
        read = await (self.get_state if remove else self.open)(tenant_id, user)
        if read is None:
            raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
        change = rlpa.ProfileChange(remove=(clean,)) if remove else rlpa.ProfileChange(add=(clean,))
        read_at = time.monotonic()
        async with transaction(self._sessionmaker) as session:
            locked = await self._lock(session, read.user_id)
            if locked is None:  # erased since it was read
                raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
            current, _ = locked
            present = clean.casefold() in {t.casefold() for t in current.traits}
            if remove and not present:
                raise NotFoundError(
                    f"User '{user}' has no trait '{clean}'.", param="trait", code="trait_not_found"
                )
            if not remove and not present and len(current.traits) >= rlpa.MAX_TRAITS:
                raise BadRequestError(
                    f"The profile already holds {rlpa.MAX_TRAITS} traits, the limit.",
                    param="trait",
                    code="invalid_trait",
                )
            state = await self._store(
                session, current, change.apply(current.traits), "admin", actor_key_id=actor.key_id
            )
            if state is not current:
                action: audit.Action = "profile.remove_trait" if remove else "profile.add_trait"
                await audit.record(session, tenant_id, actor, action, user, version=state.version)
        if state is not current:
            metrics.PROFILE_WRITES.labels("admin").inc()
            await self._cache_put(tenant_id, user, state, read_at)
        return _profile_read(user, state)

    async def append(
        self,
        tenant_id: int,
        user: str,
        traits: list[str],
        *,
        source: str,
        model_name: str | None = None,
        request_id: str | None = None,
        actor: audit.Actor | None = None,
        action: audit.Action = "profile.replace",
        detail: dict[str, Any] | None = None,
    ) -> s.ProfileRead:
        """A new version holding `traits`; with an `actor`, an admin edit it audits as
        `action`."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        read_at = time.monotonic()
        async with transaction(self._sessionmaker) as session:
            row = await repository.ensure_user(session, tenant_id, user)
            number = await repository.allocate_version(session, row.id)
            version = await repository.add_version(
                session,
                row.id,
                number,
                traits,
                source,
                model_name,
                request_id,
                actor.key_id if actor else None,
            )
            personalization = row.personalization
            if actor is not None:
                await audit.record(
                    session, tenant_id, actor, action, user, version=number, **(detail or {})
                )
        metrics.PROFILE_WRITES.labels(source).inc()
        state = ProfileState(number, traits, personalization, source, version.created_at, row.id)
        await self._cache_put(tenant_id, user, state, read_at)
        return _profile_read(user, state)

    async def replace(
        self, tenant_id: int, user: str, traits: list[str], actor: audit.Actor = audit.Actor()
    ) -> s.ProfileRead:
        clean = _validate(traits)
        return await self.append(tenant_id, user, clean, source="admin", actor=actor)

    async def get_profile(self, tenant_id: int, user: str) -> s.ProfileRead:
        """What is stored, read from the database: what a person is shown of their data never
        rests on a cache."""
        state = await self._load(tenant_id, user, create=False)
        if state is None or state.version == 0 or state.updated_at is None:
            raise NotFoundError(
                f"No profile for user '{user}'.", param="user", code="user_not_found"
            )
        return _profile_read(user, state)

    async def history(self, tenant_id: int, user: str) -> s.HistoryRead:
        async with transaction(self._sessionmaker) as session:
            row = await self._require_user(session, tenant_id, user)
            versions = await repository.list_versions(session, row.id, newest_first=False)
        return s.HistoryRead(user=user, data=list(reversed(reads.version_reads(versions))))

    async def rollback(
        self, tenant_id: int, user: str, version: int, actor: audit.Actor = audit.Actor()
    ) -> s.ProfileRead:
        async with transaction(self._sessionmaker) as session:
            row = await self._require_user(session, tenant_id, user)
            target = await repository.get_version(session, row.id, version)
        if target is None:
            raise NotFoundError(
                f"User '{user}' has no profile version {version}.",
                param="version",
                code="version_not_found",
            )
        return await self.append(
            tenant_id,
            user,
            list(target.traits),
            source="admin",
            actor=actor,
            action="profile.rollback",
            detail={"rolled_back_to": version},
        )

    async def set_personalization(
        self, tenant_id: int, user: str, enabled: bool, actor: audit.Actor = audit.Actor()
    ) -> s.UserSummary:
        async with transaction(self._sessionmaker) as session:
            row = await repository.ensure_user(session, tenant_id, user)
            await repository.set_personalization(session, row.id, enabled)
            current = await repository.get_version(session, row.id, row.current_version)
            action: audit.Action = "user.opt_in" if enabled else "user.opt_out"
            await audit.record(session, tenant_id, actor, action, user)
        # A barrier, not a delete: a reader on any replica that loaded the user before the commit
        # would otherwise put the old setting back with the same version.
        await self.cache.invalidate(self._key(tenant_id, user))
        return s.UserSummary(
            user=user,
            version=row.current_version,
            traits_count=len(current.traits) if current else 0,
            last_seen_at=row.last_seen_at,
            personalization=enabled,
        )

    async def erase(self, tenant_id: int, user: str, actor: audit.Actor = audit.Actor()) -> int:
        """Delete the user, every version and the cached profile, and revoke the keys bound to
        the user, in one transaction. Returns how many keys were revoked.

        A turn in flight holds the deleted row's id, so its write finds no row and is dropped; a
        turn that arrived before the erasure but reads after it finds the erasure in the audit
        log and neither recreates the user nor writes (open, apply_change). The cache entry
        becomes a barrier so that a reader which loaded the profile just before cannot put it
        back. The audit log keeps the erasure under the user's keyed pseudonym, and renames
        the user's earlier events the same way.
        """
        key = self._key(tenant_id, user)
        async with transaction(self._sessionmaker) as session:
            row = await self._require_user(session, tenant_id, user)
            await repository.delete_user(session, row.id)
            revoked = await auth_repository.revoke_bound_keys(session, tenant_id, user)
            # Last before the commit: its time is the fence for turns received before it.
            await audit.record_erasure(
                session, tenant_id, actor, user, self.pseudonyms.label(user), keys_revoked=revoked
            )
            await self.cache.invalidate(key)
        # Again after the commit: a reader may have re-filled the entry in between.
        await self.cache.invalidate(key)
        return revoked

    async def export(self, tenant_id: int, tenant_name: str, user: str) -> s.UserExport:
        async with transaction(self._sessionmaker) as session:
            row = await self._require_user(session, tenant_id, user)
            versions = await repository.list_versions(session, row.id, newest_first=False)
        return s.UserExport(
            user=user,
            tenant=tenant_name,
            personalization=row.personalization,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            versions=reads.version_reads(versions),
            exported_at=utcnow(),
        )

    async def list_users(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        query: str | None,
        only: str | None = None,
    ) -> s.UserList:
        after = reads.decode_cursor(cursor) if cursor else None
        async with transaction(self._sessionmaker) as session:
            rows = await repository.list_users(
                session, tenant_id, limit=limit + 1, after=after, query=query, only=only
            )
        page = rows[:limit]
        data = [
            s.UserSummary(
                user=row.external_id,
                version=row.current_version,
                traits_count=len(traits or []),
                last_seen_at=row.last_seen_at,
                personalization=row.personalization,
            )
            for row, traits in page
        ]
        next_cursor = reads.encode_cursor(page[-1][0].external_id) if len(rows) > limit else None
        return s.UserList(data=data, next_cursor=next_cursor)

    async def touch(self, tenant_id: int, user: str) -> None:
        async with transaction(self._sessionmaker) as session:
            await repository.touch(session, tenant_id, user, utcnow() - TOUCH_EVERY)
