"""All SQL for usage: the hourly upsert, the keys' last use, and the grouped sums."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, literal_column, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.models import ApiKey, Tenant
from server.db import dialect_insert
from server.usage.models import UsageHour

KEY = ("tenant_id", "hour", "key_id", "user_hash", "model")  # the primary key, in order
COUNTERS = ("requests", "prompt_tokens", "completion_tokens")
_TABLE = UsageHour.__table__


async def add_usage(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Add each row's counters to its hour's row, made if missing: one statement for them all.
    Rows are written in primary-key order, so that replicas flushing the same rows at once lock
    them in the same order (PostgreSQL would otherwise find a deadlock)."""
    if not rows:
        return
    insert = dialect_insert(session)(_TABLE)
    stmt = insert.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: _TABLE.c[name] + insert.excluded[name] for name in COUNTERS},
    )
    await session.execute(stmt, sorted(rows, key=lambda row: tuple(row[k] for k in KEY)))


async def touch_keys(session: AsyncSession, used: Sequence[tuple[int, datetime]]) -> None:
    """Move each key's last_used_at forward to its time (never back: another replica may have
    written a later one)."""
    for key_id, at in sorted(used):
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at),
            )
            .values(last_used_at=at)
        )


@dataclass(frozen=True, kw_only=True)
class Filters:
    tenant_id: int | None = None  # None: every tenant (the command line)
    key_id: int | None = None
    user_hash: str | None = None
    model: str | None = None
    since: datetime | None = None  # hours starting at or after it
    until: datetime | None = None  # hours starting before it


def _where(filters: Filters) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if filters.tenant_id is not None:
        conditions.append(UsageHour.tenant_id == filters.tenant_id)
    if filters.key_id is not None:
        conditions.append(UsageHour.key_id == filters.key_id)
    if filters.user_hash is not None:
        conditions.append(UsageHour.user_hash == filters.user_hash)
    if filters.model is not None:
        conditions.append(UsageHour.model == filters.model)
    if filters.since is not None:
        conditions.append(UsageHour.hour >= filters.since)
    if filters.until is not None:
        conditions.append(UsageHour.hour < filters.until)
    return and_(true(), *conditions)


def _day(session: AsyncSession) -> ColumnElement[Any]:
    """The UTC day of an hour: PostgreSQL truncates the timestamp (in UTC, whatever the
    session's time zone); SQLite stores it as text that starts with the date. Literals, not
    parameters: PostgreSQL matches the GROUP BY to the select list only when they are the same
    expression, and `$1` and `$3` are not."""
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), UsageHour.hour)
        return func.date_trunc(literal_column("'day'"), utc)
    return func.substr(UsageHour.hour, literal_column("1"), literal_column("10"))


def _dimensions(session: AsyncSession) -> dict[str, ColumnElement[Any]]:
    return {
        "hour": _TABLE.c.hour,
        "day": _day(session),
        "tenant": _TABLE.c.tenant_id,
        "key": _TABLE.c.key_id,
        "user": _TABLE.c.user_hash,
        "model": _TABLE.c.model,
    }


def _sums() -> list[ColumnElement[Any]]:
    return [func.coalesce(func.sum(_TABLE.c[name]), 0).label(name) for name in COUNTERS]


async def summarize(
    session: AsyncSession, filters: Filters, group_by: Sequence[str], limit: int
) -> Sequence[Row[Any]]:
    """Sums per group: the group's values (in `group_by`'s order), then the counters. Time
    groups come first and in order; within them the largest totals first."""
    dimensions = _dimensions(session)
    groups = [dimensions[name].label(name) for name in group_by]
    total = UsageHour.prompt_tokens + UsageHour.completion_tokens
    times = [column for column in groups if column.name in ("hour", "day")]
    others = [column for column in groups if column.name not in ("hour", "day")]
    stmt = (
        select(*groups, *_sums())
        .where(_where(filters))
        .group_by(*groups)
        .order_by(*times, func.sum(total).desc(), func.sum(UsageHour.requests).desc(), *others)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def total(session: AsyncSession, filters: Filters) -> Row[Any]:
    return (await session.execute(select(*_sums()).where(_where(filters)))).one()


async def tenant_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    rows = await session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(ids)))
    return {tenant_id: name for tenant_id, name in rows}


async def key_labels(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    """(name, prefix) of each key still in the database."""
    rows = await session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(ApiKey.id.in_(ids))
    )
    return {key_id: (name, prefix) for key_id, name, prefix in rows}


def as_day(value: object) -> date:
    """A `day` group's value as a date: a timestamp on PostgreSQL, text on SQLite."""
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))
