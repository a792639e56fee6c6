"""GET /admin/usage: the caller's tenant's requests and tokens, filtered and grouped."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from server.auth import schemas as auth_schemas
from server.auth.service import validate_user
from server.deps import AdminDep, StateDep
from server.errors import PermissionDeniedError
from server.usage import repository, service
from server.usage import schemas as s

router = APIRouter(prefix="/admin", tags=["admin: usage"])
_PLAIN = auth_schemas.NO_CONTROL_CHARACTERS


@router.get("/usage", response_model=s.UsageReport)
async def read_usage(
    principal: AdminDep,
    state: StateDep,
    group_by: Annotated[
        str,
        Query(
            max_length=64,
            description="Comma-separated: hour or day, tenant, key, user, model. Empty: one "
            "row, the total.",
        ),
    ] = "day",
    key_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    user: Annotated[
        str | None, Query(max_length=256, description="An end user's id (the `user` field).")
    ] = None,
    model: Annotated[str | None, Query(max_length=256, pattern=_PLAIN)] = None,
    since: Annotated[
        datetime | None, Query(description="From the hour this falls in (UTC if no zone).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Hours that start before this (UTC if no zone).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> s.UsageReport:
    """Requests and prompt/completion tokens of chat turns, per hour as stored, summed over
    the groups asked for. This replica's counts not yet written are written first; other
    replicas' reach it within RLPA_USAGE_FLUSH_S."""
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot read usage.")
    groups = service.parse_group_by(group_by)
    filters = repository.Filters(
        tenant_id=principal.tenant_id,
        key_id=key_id,
        user_hash=None if user is None else state.pseudonyms.of(validate_user(user)),
        model=model,
        since=None if since is None else service.hour_of(since, "since"),
        until=None if until is None else service.as_utc(until, "until"),
    )
    await state.usage.flush()
    query = service.UsageQuery(filters=filters, group_by=groups, limit=limit)
    return await service.report(state.sessionmaker, query)
