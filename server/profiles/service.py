"""Versioned profiles: read through the cache, append-only writes, history, rollback, erasure.

Each method is its own short transaction; the cache is updated only after the commit. Admin
changes record the acting key on the version and an audit event in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import metrics, rlpa
from server.auth import audit
from server.auth import repository as auth_repository
from server.cache import CachedProfile, ProfileCache, cache_key
from server.db import autocommit, transaction, utcnow
from server.errors import BadRequestError, NotFoundError
from server.profiles import reads, repository
from server.profiles import schemas as s
from server.profiles.models import EndUser

SOURCES = ("model", "admin", "user")
TOUCH_EVERY = timedelta(seconds=60)


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
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cache: ProfileCache):
        self._sessionmaker = sessionmaker
        self.cache = cache

    async def _require_user(self, session: AsyncSession, tenant_id: int, user: str) -> EndUser:
        row = await repository.get_user(session, tenant_id, user)
        if row is None:
            raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
        return row

    async def get_state(self, tenant_id: int, user: str) -> ProfileState | None:
        """Current profile for a chat turn, cache first. None for a user never seen."""
        key = cache_key(tenant_id, user)
        cached = await self.cache.get(key)
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

    async def open(self, tenant_id: int, user: str) -> ProfileState:
        """The state a chat turn starts from, creating the user on their first turn so that the
        turn is tied to one user row (an erase during the turn then removes that row)."""
        state = await self.get_state(tenant_id, user)
        if state is not None:
            return state
        created = await self._load(tenant_id, user, create=True)
        assert created is not None
        return created

    async def _load(self, tenant_id: int, user: str, *, create: bool) -> ProfileState | None:
        """The current state from the database (the user created first if `create`), cached."""
        if not create:  # one statement, outside a transaction: a read needs no BEGIN and COMMIT
            async with autocommit(self._sessionmaker) as connection:
                found = await repository.get_current(connection, tenant_id, user)
            if found is None:
                return None
            user_id, version, personalization, traits, source, created_at = found
            state = ProfileState(
                version, traits or [], personalization, source, created_at, user_id
            )
            await self._cache_put(tenant_id, user, state)
            return state
        async with transaction(self._sessionmaker) as session:
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
        await self._cache_put(tenant_id, user, state)
        return state

    async def _cache_put(self, tenant_id: int, user: str, state: ProfileState) -> None:
        updated = state.updated_at.isoformat() if state.updated_at else None
        value = CachedProfile(
            state.version,
            state.traits,
            state.source,
            updated,
            state.personalization,
            state.user_id,
        )
        await self.cache.put(cache_key(tenant_id, user), value)

    async def _lock(self, session: AsyncSession, user_id: int) -> ProfileState | None:
        """The user's latest version, the user row locked until commit; None if erased."""
        locked = await repository.lock_user(session, user_id)
        if locked is None:
            return None
        current, personalization = locked
        latest = await repository.get_version(session, user_id, current)
        return ProfileState(
            current,
            latest.traits if latest else [],
            personalization,
            latest.source if latest else None,
            latest.created_at if latest else None,
            user_id,
        )

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
        model_name: str | None = None,
        request_id: str | None = None,
    ) -> ProfileState | None:
        """Apply a chat turn's change to the user's latest version, in one transaction.

        Returns the resulting state (a new version only if the change changed anything), or None
        when the user row the turn read is gone: the user was erased while the turn ran, and an
        erased user stays erased. An opted-out user gets no new version.

        The common case, nobody wrote since the turn read, is one statement (PostgreSQL); the
        others lock the user row and merge into what is newest.
        """
        merged = change.apply(read.traits)
        if read.personalization and merged != read.traits:
            async with autocommit(self._sessionmaker) as connection:
                appended = await repository.append_if_current(
                    connection, read.user_id, read.version, merged, "model", model_name, request_id
                )
            if appended is not None:
                number, created_at = appended
                state = ProfileState(number, merged, True, "model", created_at, read.user_id)
                metrics.PROFILE_WRITES.labels("model").inc()
                await self._cache_put(tenant_id, user, state)
                return state
        async with transaction(self._sessionmaker) as session:
            current = await self._lock(session, read.user_id)
            if current is None:
                metrics.ERASED_WRITES_DROPPED.inc()
                return None
            merged = change.apply(current.traits) if current.personalization else current.traits
            state = await self._store(
                session, current, merged, "model", model_name=model_name, request_id=request_id
            )
        if state is not current:
            metrics.PROFILE_WRITES.labels("model").inc()
            await self._cache_put(tenant_id, user, state)
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
        async with transaction(self._sessionmaker) as session:
            current = await self._lock(session, read.user_id)
            if current is None:  # erased since it was read
                raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
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
            await self._cache_put(tenant_id, user, state)
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
        await self._cache_put(tenant_id, user, state)
        return _profile_read(user, state)

    async def replace(
        self, tenant_id: int, user: str, traits: list[str], actor: audit.Actor = audit.Actor()
    ) -> s.ProfileRead:
        clean = _validate(traits)
        return await self.append(tenant_id, user, clean, source="admin", actor=actor)

    async def get_profile(self, tenant_id: int, user: str) -> s.ProfileRead:
        state = await self.get_state(tenant_id, user)
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
        await self.cache.delete(cache_key(tenant_id, user))
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

        A turn in flight holds the deleted row's id, so its write finds no row and is dropped;
        the cache entry becomes a short-lived tombstone so that a reader which loaded the
        profile just before cannot put it back. The audit log keeps the erasure under a hash
        of the user id, and hashes the user's earlier events the same way.
        """
        key = cache_key(tenant_id, user)
        async with transaction(self._sessionmaker) as session:
            row = await self._require_user(session, tenant_id, user)
            await repository.delete_user(session, row.id)
            revoked = await auth_repository.revoke_bound_keys(session, tenant_id, user)
            await audit.record_erasure(session, tenant_id, actor, user, keys_revoked=revoked)
            await self.cache.tombstone(key)
        # Again after the commit: a reader may have re-filled the entry in between.
        await self.cache.tombstone(key)
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
