"""Admin routes for API keys and the audit log, confined to the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from server.auth import audit, repository, service
from server.auth import schemas as s
from server.db import transaction
from server.deps import AdminDep, StateDep
from server.errors import PermissionDeniedError

router = APIRouter(prefix="/admin")
# Key ids are a 32-bit INTEGER column: a larger id cannot even be compared against it.
MAX_KEY_ID = 2**31 - 1


@router.post("/keys", response_model=s.KeyCreated, status_code=201, tags=["admin: keys"])
async def create_key(body: s.KeyCreate, principal: AdminDep, state: StateDep) -> s.KeyCreated:
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot create keys.")
    async with transaction(state.sessionmaker) as session:
        tenant = await repository.get_tenant(session, principal.tenant_id)
        assert tenant is not None
        created = await service.create_key(session, tenant, body, actor=principal.actor)
    state.auth.key_created()
    return created


@router.get("/keys", response_model=s.KeyList, tags=["admin: keys"])
async def list_keys(principal: AdminDep, state: StateDep) -> s.KeyList:
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot list keys.")
    async with transaction(state.sessionmaker) as session:
        keys = await repository.list_keys(session, principal.tenant_id)
    return s.KeyList(data=[service.key_read(k, principal.tenant_name) for k in keys])


@router.delete("/keys/{key_id}", status_code=204, tags=["admin: keys"])
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_KEY_ID)], principal: AdminDep, state: StateDep
) -> Response:
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot revoke keys.")
    await state.auth.revoke(key_id, principal.tenant_id, principal.actor)
    return Response(status_code=204)


@router.patch("/keys/{key_id}", response_model=s.KeyRead, tags=["admin: keys"])
async def update_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_KEY_ID)],
    body: s.KeyUpdate,
    principal: AdminDep,
    state: StateDep,
) -> s.KeyRead:
    """Change a key's name, expiry or limits: only the fields sent; null clears one. Other
    replicas apply it within RLPA_AUTH_CACHE_TTL_S."""
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot change keys.")
    async with transaction(state.sessionmaker) as session:
        key = await service.update_key(
            session, key_id, principal.tenant_id, body, actor=principal.actor
        )
    state.auth.forget()
    return service.key_read(key, principal.tenant_name)


@router.get("/audit", response_model=s.AuditList, tags=["admin: audit"])
async def list_audit_events(
    principal: AdminDep,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> s.AuditList:
    """The tenant's audit events, newest first; pass `next_cursor` back for the next page."""
    if principal.bound_user is not None:
        raise PermissionDeniedError("A key bound to one user cannot read the audit log.")
    return await audit.list_events(
        state.sessionmaker, principal.tenant_id, limit=limit, cursor=cursor
    )
