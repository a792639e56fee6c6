"""Versioned profiles for admins and end users: history, edits, rollback, export, erasure.

Built on a chat turn's operations (server/profiles/turns.py: the reads through the cache, the
locked writes), which the chat service sees alone. Each method is its own short transaction; the
cache is updated only after the commit. Admin changes record the acting key on the version and an
audit event in that same transaction.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server import metrics, rlpa
from server.auth import audit
from server.auth import repository as auth_repository
from server.db import transaction, utcnow
from server.errors import BadRequestError, NotFoundError
from server.profiles import reads, repository
from server.profiles import schemas as s
from server.profiles.models import EndUser
from server.profiles.state import ProfileState
from server.profiles.turns import TurnProfiles

SOURCES = ("model", "admin", "user")


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


class ProfileService(TurnProfiles):
    async def _require_user(self, session: AsyncSession, tenant_id: int, user: str) -> EndUser:
        row = await repository.get_user(session, tenant_id, user)
        if row is None:
            raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
        return row

    async def edit_trait(
        self,
        tenant_id: int,
        user: str,
        trait: str,
        *,
        remove: bool,
        actor: audit.Actor,
        source: str = "admin",
    ) -> s.ProfileRead:
        """Add or remove one trait as an admin (`source` "admin") or as the user (`source`
        "user", from /v1/me): a change against the latest version under the user's lock, as a
        chat turn writes, so that it merges with turns running meanwhile.

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
                session, current, change.apply(current.traits), source, actor_key_id=actor.key_id
            )
            if state is not current:
                action: audit.Action = "profile.remove_trait" if remove else "profile.add_trait"
                await audit.record(session, tenant_id, actor, action, user, version=state.version)
        if state is not current:
            metrics.PROFILE_WRITES.labels(source).inc()
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
        state = ProfileState(
            version=number,
            traits=traits,
            personalization=personalization,
            source=source,
            updated_at=version.created_at,
            user_id=row.id,
        )
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
