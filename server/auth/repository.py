"""All SQL for tenants and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.models import ApiKey, AuditEvent, ServerSecret, Tenant
from server.db import dialect_insert, utcnow


async def ensure_tenant(session: AsyncSession, name: str) -> Tenant:
    await session.execute(
        dialect_insert(session)(Tenant)
        .values(name=name, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    assert tenant is not None
    return tenant


async def ensure_secret(session: AsyncSession, name: str, proposed: str) -> str:
    """The secret `name`, stored as `proposed` unless a replica stored one first."""
    await session.execute(
        dialect_insert(session)(ServerSecret)
        .values(name=name, value=proposed, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    assert value is not None
    return value


async def get_tenant(session: AsyncSession, tenant_id: int) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def get_tenant_by_name(session: AsyncSession, name: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.name == name))


async def get_key(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_key_by_hash(session: AsyncSession, secret_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.secret_hash == secret_hash))


async def add_key(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def list_keys(session: AsyncSession, tenant_id: int | None) -> Sequence[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.id)
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    return (await session.scalars(stmt)).all()


async def revoke_key(session: AsyncSession, key_id: int, tenant_id: int | None) -> bool:
    stmt = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    result = await session.execute(stmt.values(revoked_at=utcnow()))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def count_keys(session: AsyncSession) -> int:
    """0 or 1: whether any key, revoked or not, was ever created."""
    rows = await session.scalars(select(ApiKey.id).limit(1))
    return len(rows.all())


async def revoke_bound_keys(session: AsyncSession, tenant_id: int, user: str) -> int:
    result = await session.execute(
        update(ApiKey)
        .where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.bound_user == user,
            ApiKey.revoked_at.is_(None),
        )
        # The key forgets whom it was bound to: nothing of an erased user stays behind.
        .values(revoked_at=utcnow(), bound_user=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def erased_since(session: AsyncSession, tenant_id: int, target: str, since: datetime) -> bool:
    """Whether the user whose erasure events name `target` was erased at or after `since`."""
    found = await session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.tenant_id == tenant_id,
            AuditEvent.target == target,
            AuditEvent.action == "user.erase",
            AuditEvent.at >= since,
        )
        .limit(1)
    )
    return found is not None


async def add_audit_event(
    session: AsyncSession,
    tenant_id: int,
    actor_key_id: int | None,
    action: str,
    target: str,
    detail: dict[str, Any],
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            at=utcnow(),
            actor_key_id=actor_key_id,
            action=action,
            target=target,
            detail=detail,
        )
    )
    await session.flush()


async def list_audit_events(
    session: AsyncSession, tenant_id: int, *, limit: int, before_id: int | None
) -> Sequence[AuditEvent]:
    """Newest first; `before_id` is the last id of the previous page (keyset paging)."""
    stmt = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    return (await session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit))).all()


async def pseudonymize_audit_target(
    session: AsyncSession, tenant_id: int, user: str, hashed: str
) -> None:
    """Replace `user` by `hashed` as the target of every user and profile event of the tenant
    (key events name keys, whose ids a user's name may equal)."""
    await session.execute(
        update(AuditEvent)
        .where(
            AuditEvent.tenant_id == tenant_id,
            AuditEvent.target == user,
            or_(AuditEvent.action.startswith("user."), AuditEvent.action.startswith("profile.")),
        )
        .values(target=hashed)
    )
