"""/v1/me: an end user's own profile, export and erasure, removing one trait, opting out of
memory and back in, through a key with the `profile` scope bound to that user. The user is the
key's; no route takes a user from the request."""

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
        (400, "Bad request"),
        (403, "The key lacks the profile scope or is not bound to a user"),
        (404, "Nothing is stored about the user, or not that trait"),
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


@router.delete("/profile/traits", response_model=s.ProfileRead, responses=_errors)
async def remove_my_trait(
    trait: str, principal: ProfileOwnerDep, profiles: ProfilesDep
) -> s.ProfileRead:
    """Forget one trait (compared case-insensitively): a new version, source `user`, merged with
    turns running meanwhile as an admin's edit is."""
    return await profiles.edit_trait(
        principal.tenant_id,
        _user(principal),
        trait,
        remove=True,
        actor=principal.actor,
        source="user",
    )


@router.patch("", response_model=s.UserSummary, responses=_errors)
async def update_me(
    body: s.UserUpdate, principal: ProfileOwnerDep, profiles: ProfilesDep
) -> s.UserSummary:
    """`{"personalization": false}` opts the user out: from the moment this returns, on every
    replica, the user's chat turns neither read nor write the stored profile (which is kept,
    as it is, until they opt back in with `true` or erase it). Stored on the user's row."""
    return await profiles.set_personalization(
        principal.tenant_id, _user(principal), body.personalization, principal.actor
    )


@router.delete("", status_code=204, responses=_errors)
async def erase_me(principal: ProfileOwnerDep, profiles: ProfilesDep, state: StateDep) -> Response:
    """Erase the user as the admin erase does; the keys bound to the user, this one included,
    stop working."""
    if await profiles.erase(principal.tenant_id, _user(principal), principal.actor):
        state.auth.forget()
    return Response(status_code=204)
