"""All SQL for end users and their profile versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.db import utcnow
from server.profiles.models import EndUser, ProfileVersion


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


async def get_user(session: AsyncSession, tenant_id: int, external_id: str) -> EndUser | None:
    return await session.scalar(
        select(EndUser).where(EndUser.tenant_id == tenant_id, EndUser.external_id == external_id)
    )


async def ensure_user(session: AsyncSession, tenant_id: int, external_id: str) -> EndUser:
    """Get or create, safe against a concurrent creator of the same user."""
    now = utcnow()
    stmt = (
        _insert(session)(EndUser)
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


async def lock_user(session: AsyncSession, user_id: int) -> tuple[int, bool] | None:
    """(current version, personalization) of a user row, locked until commit; None if the row is
    gone (erased). An UPDATE rather than SELECT ... FOR UPDATE: it takes SQLite's write lock up
    front too, so two writers never both read and then fail to upgrade."""
    result = await session.execute(
        update(EndUser)
        .where(EndUser.id == user_id)
        .values(last_seen_at=utcnow())
        .returning(EndUser.current_version, EndUser.personalization)
    )
    row = result.one_or_none()
    return None if row is None else (int(row[0]), bool(row[1]))


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


async def list_users(
    session: AsyncSession,
    tenant_id: int,
    *,
    limit: int,
    after: str | None,
    query: str | None,
    only: str | None = None,
) -> Sequence[tuple[EndUser, list[str] | None]]:
    current = (
        select(ProfileVersion.traits)
        .where(
            ProfileVersion.end_user_id == EndUser.id,
            ProfileVersion.version == EndUser.current_version,
        )
        .scalar_subquery()
    )
    stmt = select(EndUser, current).where(EndUser.tenant_id == tenant_id)
    if only is not None:  # a key bound to one end user sees only that user
        stmt = stmt.where(EndUser.external_id == only)
    if after is not None:
        stmt = stmt.where(EndUser.external_id > after)
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(EndUser.external_id).like(f"%{escaped.lower()}%", escape="\\"))
    stmt = stmt.order_by(EndUser.external_id).limit(limit)
    result = await session.execute(stmt)
    return [(row[0], row[1]) for row in result.all()]
