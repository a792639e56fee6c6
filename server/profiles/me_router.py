"""/v1/me: an end user's own profile, export and erasure, through a key with the `profile` scope
bound to that user. The user is the key's; no route takes a user from the request."""

from __future__ import annotations

from fastapi import APIRouter, Response

from server.deps import ProfileOwnerDep, ProfilesDep, StateDep
from server.errors import error_body
from server.profiles import schemas as s

router = APIRouter(prefix="/v1/me", tags=["end user: own profile"])

_errors: dict[int | str, dict[str, object]] = {
    code: {"description": desc, "content": {"application/json": {"example": error_body(desc, "x")}}}
    for code, desc in (
        (401, "Missing or wrong API key"),
        (403, "The key lacks the profile scope or is not bound to a user"),
        (404, "Nothing is stored about the user"),
    )
}


def _user(principal: ProfileOwnerDep) -> str:
    assert principal.bound_user is not None  # ProfileOwnerDep refuses unbound keys
    return principal.bound_user


@router.get("/profile", response_model=s.ProfileRead, responses=_errors)
async def get_my_profile(principal: ProfileOwnerDep, profiles: ProfilesDep) -> s.ProfileRead:
    return await profiles.get_profile(principal.tenant_id, _user(principal))


@router.get("/export", response_model=s.UserExport, responses=_errors)
async def export_me(principal: ProfileOwnerDep, profiles: ProfilesDep) -> s.UserExport:
    """Everything kept about the user: every profile version, with who made it."""
    return await profiles.export(principal.tenant_id, principal.tenant_name, _user(principal))


@router.delete("", status_code=204, responses=_errors)
async def erase_me(principal: ProfileOwnerDep, profiles: ProfilesDep, state: StateDep) -> Response:
    """Erase the user as the admin erase does; the keys bound to the user, this one included,
    stop working."""
    if await profiles.erase(principal.tenant_id, _user(principal), principal.actor):
        state.auth.forget()
    return Response(status_code=204)
