"""All SQL for end users and their profile versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from server.db import dialect_insert, utcnow
from server.profiles.models import EndUser, ProfileVersion


async def get_user(session: AsyncSession, tenant_id: int, external_id: str) -> EndUser | None:
    return await session.scalar(
        select(EndUser).where(EndUser.tenant_id == tenant_id, EndUser.external_id == external_id)
    )


@cache
def _current_statement() -> Any:
    """get_current's statement, built once."""
    return (
        select(
            EndUser.id,
            EndUser.current_version,
            EndUser.personalization,
            ProfileVersion.traits,
            ProfileVersion.source,
            ProfileVersion.created_at,
        )
        .outerjoin(
            ProfileVersion,
            (ProfileVersion.end_user_id == EndUser.id)
            & (ProfileVersion.version == EndUser.current_version),
        )
        .where(
            EndUser.tenant_id == bindparam("p_tenant_id"),
            EndUser.external_id == bindparam("p_external_id"),
        )
    )


Current = tuple[int, int, bool, list[str] | None, str | None, datetime | None]


async def get_current(
    connection: AsyncConnection, tenant_id: int, external_id: str
) -> Current | None:
    """(user id, current version, personalization, traits, source, created_at) of a user's
    current version in one statement; the last three are None before the first version. None
    for a user never seen."""
    params = {"p_tenant_id": tenant_id, "p_external_id": external_id}
    row: Row[*Current] | None = (
        await connection.execute(_current_statement(), params)
    ).one_or_none()
    return row


async def ensure_user(session: AsyncSession, tenant_id: int, external_id: str) -> EndUser:
    """Get or create, safe against a concurrent creator of the same user."""
    now = utcnow()
    stmt = (
        dialect_insert(session)(EndUser)
        .values(
            tenant_id=tenant_id,
            external_id=external_id,
            personalization=True,
            current_version=0,
            created_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "external_id"])
    )
    await session.execute(stmt)
    user = await get_user(session, tenant_id, external_id)
    assert user is not None
    return user


async def lock_user(session: AsyncSession, user_id: int) -> tuple[int, bool, datetime] | None:
    """(current version, personalization, created_at) of a user row, locked until commit; None
    if the row is gone (erased). An UPDATE rather than SELECT ... FOR UPDATE: it takes SQLite's
    write lock up front too, so two writers never both read and then fail to upgrade."""
    result = await session.execute(
        update(EndUser)
        .where(EndUser.id == user_id)
        .values(last_seen_at=utcnow())
        .returning(EndUser.current_version, EndUser.personalization, EndUser.created_at)
    )
    row = result.one_or_none()
    return None if row is None else (int(row[0]), bool(row[1]), row[2])


async def version_of_request(session: AsyncSession, user_id: int, request_id: str) -> int | None:
    """The version a request already wrote for this user, if any: a retried turn with the same
    request id is applied at most once."""
    found = await session.scalar(
        select(func.max(ProfileVersion.version)).where(
            ProfileVersion.end_user_id == user_id, ProfileVersion.request_id == request_id
        )
    )
    return None if found is None else int(found)


async def allocate_version(session: AsyncSession, user_id: int) -> int:
    """Next version number. The UPDATE row-locks the user until commit, so concurrent writers
    queue behind each other and a rolled-back writer gives its number back: no gaps."""
    result = await session.execute(
        update(EndUser)
        .where(EndUser.id == user_id)
        .values(current_version=EndUser.current_version + 1, last_seen_at=utcnow())
        .returning(EndUser.current_version)
    )
    return int(result.scalar_one())


async def add_version(
    session: AsyncSession,
    user_id: int,
    version: int,
    traits: list[str],
    source: str,
    model_name: str | None,
    request_id: str | None,
    actor_key_id: int | None = None,
) -> ProfileVersion:
    row = ProfileVersion(
        end_user_id=user_id,
        version=version,
        traits=traits,
        source=source,
        model_name=model_name,
        request_id=request_id,
        actor_key_id=actor_key_id,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


@cache
def _append_statement() -> Any:
    """append_if_current's statement, built once: building it costs more than running it."""
    written = (
        select(ProfileVersion.id)
        .where(
            ProfileVersion.end_user_id == bindparam("p_user_id"),
            ProfileVersion.request_id == bindparam("p_request_id"),
        )
        .exists()
    )
    bump = (
        update(EndUser)
        .where(
            EndUser.id == bindparam("p_user_id"),
            EndUser.current_version == bindparam("p_read_version"),
            EndUser.personalization.is_(True),
            # A row made after the turn arrived may be a successor of an erased user: the
            # locked path decides (ProfileService.apply_change).
            EndUser.created_at <= bindparam("p_arrived_at", type_=EndUser.created_at.type),
            ~written,
        )
        .values(current_version=EndUser.current_version + 1, last_seen_at=bindparam("p_now"))
        .returning(EndUser.id, EndUser.current_version)
        .cte("bump")
    )
    values = select(
        bump.c.id,
        bump.c.current_version,
        bindparam("p_traits", type_=ProfileVersion.traits.type),
        bindparam("p_source", type_=ProfileVersion.source.type),
        bindparam("p_model_name", type_=ProfileVersion.model_name.type),
        bindparam("p_request_id", type_=ProfileVersion.request_id.type),
        bindparam("p_now", type_=ProfileVersion.created_at.type),
    )
    columns = ["end_user_id", "version", "traits", "source", "model_name", "request_id"]
    return (
        insert(ProfileVersion)
        .from_select([*columns, "created_at"], values)
        .returning(ProfileVersion.version)
    )


async def append_if_current(
    connection: AsyncConnection,
    user_id: int,
    read_version: int,
    traits: list[str],
    source: str,
    model_name: str | None,
    request_id: str | None,
    arrived_at: datetime,
) -> tuple[int, datetime] | None:
    """Append `traits` as the next version in one statement, if the user's current version is
    still `read_version`, personalization is on, the row existed when the turn arrived and the
    request wrote no version yet: (new version, its time), else None (take the locked path).

    One round trip on PostgreSQL, where the UPDATE and the INSERT are one atomic statement (a
    data-modifying CTE) that can run outside an explicit transaction; the UPDATE's row lock
    orders it against concurrent writers as allocate_version does. None on other databases.
    """
    if connection.dialect.name != "postgresql":
        return None
    now = utcnow()
    params = {
        "p_user_id": user_id,
        "p_read_version": read_version,
        "p_arrived_at": arrived_at,
        "p_now": now,
        "p_traits": traits,
        "p_source": source,
        "p_model_name": model_name,
        "p_request_id": request_id,
    }
    version = (await connection.execute(_append_statement(), params)).scalar_one_or_none()
    return None if version is None else (int(version), now)


async def get_version(session: AsyncSession, user_id: int, version: int) -> ProfileVersion | None:
    return await session.scalar(
        select(ProfileVersion).where(
            ProfileVersion.end_user_id == user_id, ProfileVersion.version == version
        )
    )


async def list_versions(
    session: AsyncSession, user_id: int, *, newest_first: bool
) -> Sequence[ProfileVersion]:
    order = ProfileVersion.version.desc() if newest_first else ProfileVersion.version.asc()
    result = await session.scalars(
        select(ProfileVersion).where(ProfileVersion.end_user_id == user_id).order_by(order)
    )
    return result.all()


async def set_personalization(session: AsyncSession, user_id: int, enabled: bool) -> None:
    await session.execute(
        update(EndUser).where(EndUser.id == user_id).values(personalization=enabled)
    )


async def touch(
    session: AsyncSession, tenant_id: int, external_id: str, older_than: datetime
) -> None:
    await session.execute(
        update(EndUser)
        .where(
            EndUser.tenant_id == tenant_id,
            EndUser.external_id == external_id,
            EndUser.last_seen_at < older_than,
        )
        .values(last_seen_at=utcnow())
    )


async def delete_user(session: AsyncSession, user_id: int) -> None:
    # Explicit deletes, not only ON DELETE CASCADE: SQLite enforces it only per connection pragma.
    await session.execute(delete(ProfileVersion).where(ProfileVersion.end_user_id == user_id))
    await session.execute(delete(EndUser).where(EndUser.id == user_id))


# A search first looks for its page among this many users in order (see list_users).
SEARCH_WINDOW = 5000


async def list_users(
    session: AsyncSession,
    tenant_id: int,
    *,
    limit: int,
    after: str | None,
    query: str | None,
    only: str | None = None,
) -> Sequence[tuple[EndUser, list[str] | None]]:
    """A page of users in external_id order, each with its current traits; `query` keeps those
    whose id holds it (case-insensitive substring).

    A substring search is two plans, because PostgreSQL cannot estimate how many ids hold a
    substring: it picks the trigram index (migration 0004) for every query, which is fast for a
    rare substring and slow for a common one (every match fetched, then sorted: 0.6 s for one
    that a million users hold). So the page is first looked for among the next SEARCH_WINDOW
    users in order, which finds a common substring's page at once; only when that window holds
    too few matches does the search run over all users, where the matches are rare enough for
    the index to be the right plan.
    """
    users = select(EndUser).where(EndUser.tenant_id == tenant_id)
    if only is not None:  # a key bound to one end user sees only that user
        users = users.where(EndUser.external_id == only)
    if after is not None:
        users = users.where(EndUser.external_id > after)
    if not query:
        return await _page(session, aliased(EndUser, users.subquery()), None, limit)
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped.lower()}%"
    window = users.order_by(EndUser.external_id).limit(SEARCH_WINDOW).subquery()
    found = await _page(session, aliased(EndUser, window), pattern, limit)
    if len(found) >= limit:
        return found
    return await _page(session, aliased(EndUser, users.subquery()), pattern, limit)


async def _page(
    session: AsyncSession, user: Any, pattern: str | None, limit: int
) -> Sequence[tuple[EndUser, list[str] | None]]:
    current = (
        select(ProfileVersion.traits)
        .where(
            ProfileVersion.end_user_id == user.id,
            ProfileVersion.version == user.current_version,
        )
        .scalar_subquery()
    )
    stmt = select(user, current)
    if pattern is not None:
        stmt = stmt.where(func.lower(user.external_id).like(pattern, escape="\\"))
    result = await session.execute(stmt.order_by(user.external_id).limit(limit))
    return [(row[0], row[1]) for row in result.all()]
