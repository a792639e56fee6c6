"""Admin routes over end users and their profiles (HTTP only; logic lives in the service).

`{user}` uses the path converter so that any printable user string, URL-encoded slashes
included, reaches the handler whole; the more specific routes are declared first. Every change
is made as the caller's key (`principal.actor`), which the version and the audit log record.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from server.auth import schemas as auth_schemas
from server.deps import AdminDep, ProfilesDep, StateDep, UserDep
from server.errors import error_body
from server.profiles import schemas as s

router = APIRouter(prefix="/admin/users", tags=["admin: users"])

_errors: dict[int | str, dict[str, object]] = {
    code: {"description": desc, "content": {"application/json": {"example": error_body(desc, "x")}}}
    for code, desc in (
        (400, "Bad request"),
        (401, "Missing or wrong API key"),
        (403, "The key lacks the admin scope"),
        (404, "Unknown user, version or trait"),
    )
}


@router.get("", response_model=s.UserList, responses=_errors)
async def list_users(
    principal: AdminDep,
    profiles: ProfilesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    q: Annotated[
        str | None, Query(max_length=256, pattern=auth_schemas.NO_CONTROL_CHARACTERS)
    ] = None,
) -> s.UserList:
    return await profiles.list_users(
        principal.tenant_id, limit=limit, cursor=cursor, query=q, only=principal.bound_user
    )


@router.get("/{user:path}/profile/history", response_model=s.HistoryRead, responses=_errors)
async def profile_history(
    user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.HistoryRead:
    return await profiles.history(principal.tenant_id, user)


@router.post("/{user:path}/profile/rollback", response_model=s.ProfileRead, responses=_errors)
async def rollback_profile(
    body: s.RollbackRequest, user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.ProfileRead:
    return await profiles.rollback(principal.tenant_id, user, body.version, principal.actor)


@router.post("/{user:path}/profile/traits", response_model=s.ProfileRead, responses=_errors)
async def add_trait(
    body: s.TraitCreate, user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.ProfileRead:
    """Add one trait as a new version, merged with chat turns running meanwhile."""
    return await profiles.edit_trait(
        principal.tenant_id, user, body.trait, remove=False, actor=principal.actor
    )


@router.delete("/{user:path}/profile/traits", response_model=s.ProfileRead, responses=_errors)
async def remove_trait(
    trait: str, user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.ProfileRead:
    """Remove one trait (compared case-insensitively) as a new version."""
    return await profiles.edit_trait(
        principal.tenant_id, user, trait, remove=True, actor=principal.actor
    )


@router.get("/{user:path}/profile", response_model=s.ProfileRead, responses=_errors)
async def get_profile(user: UserDep, principal: AdminDep, profiles: ProfilesDep) -> s.ProfileRead:
    return await profiles.get_profile(principal.tenant_id, user)


@router.put("/{user:path}/profile", response_model=s.ProfileRead, responses=_errors)
async def replace_profile(
    body: s.ProfileUpdate, user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.ProfileRead:
    return await profiles.replace(principal.tenant_id, user, body.traits, principal.actor)


@router.get("/{user:path}/export", response_model=s.UserExport, responses=_errors)
async def export_user(user: UserDep, principal: AdminDep, profiles: ProfilesDep) -> s.UserExport:
    return await profiles.export(principal.tenant_id, principal.tenant_name, user)


@router.patch("/{user:path}", response_model=s.UserSummary, responses=_errors)
async def update_user(
    body: s.UserUpdate, user: UserDep, principal: AdminDep, profiles: ProfilesDep
) -> s.UserSummary:
    return await profiles.set_personalization(
        principal.tenant_id, user, body.personalization, principal.actor
    )


@router.delete("/{user:path}", status_code=204, responses=_errors)
async def erase_user(
    user: UserDep, principal: AdminDep, profiles: ProfilesDep, state: StateDep
) -> Response:
    """Erase the user, every profile version, and revoke the API keys bound to the user."""
    if await profiles.erase(principal.tenant_id, user, principal.actor):
        state.auth.forget()
    return Response(status_code=204)
