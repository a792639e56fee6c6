"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server import observability
from server.auth.service import Authenticator, Principal, validate_user
from server.cache import ProfileCache
from server.errors import NotFoundError, PermissionDeniedError
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.settings import Settings

if TYPE_CHECKING:
    from server.backends.base import ChatBackend
    from server.chat.service import ChatService
    from server.ratelimit import RateLimiter
    from server.usage.service import UsageMeter


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    cache: ProfileCache
    pseudonyms: Pseudonyms
    profiles: ProfileService
    auth: Authenticator
    limiter: RateLimiter
    usage: UsageMeter
    backend: ChatBackend | None = None
    chat: ChatService | None = None


# Every dependency is `async def`, even where it awaits nothing: FastAPI runs a plain `def` in a
# worker thread, a hand-off that cost more per chat turn than the profile read.
async def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.rlpa
    return state


StateDep = Annotated[AppState, Depends(get_app_state)]
_bearer = HTTPBearer(auto_error=False, description="An rlpa API key.")


async def get_principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    address = request.client.host if request.client else None
    principal = await state.auth.authenticate(
        credentials.credentials if credentials else None, address
    )
    observability.note_principal(principal.key_id, principal.tenant_name, principal.bound_user)
    state.usage.touch(principal.key_id)
    await state.limiter.check(principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _require(scope: str) -> Any:
    async def check(principal: PrincipalDep) -> Principal:
        if scope not in principal.scopes:
            raise PermissionDeniedError(f"This API key lacks the '{scope}' scope.")
        return principal

    return check


AdminDep = Annotated[Principal, Depends(_require("admin"))]


async def chat_principal(
    principal: Annotated[Principal, Depends(_require("chat"))], state: StateDep
) -> Principal:
    """A `chat` key whose minute still has tokens left (server/ratelimit.py)."""
    await state.limiter.check_tokens(principal)
    return principal


ChatPrincipalDep = Annotated[Principal, Depends(chat_principal)]


async def profile_owner(principal: Annotated[Principal, Depends(_require("profile"))]) -> Principal:
    """A `profile` key, which reaches only the one end user it is bound to."""
    if principal.bound_user is None:  # refused at creation; a key from before cannot slip by
        raise PermissionDeniedError("A 'profile' key must be bound to a user.")
    return principal


ProfileOwnerDep = Annotated[Principal, Depends(profile_owner)]


async def admin_user(user: str, principal: AdminDep) -> str:
    """The `{user}` path parameter, checked and confined to a user-bound key's own user."""
    validate_user(user)
    observability.note_user(user)
    if principal.bound_user is not None and principal.bound_user != user:
        raise NotFoundError(f"No user '{user}'.", param="user", code="user_not_found")
    return user


UserDep = Annotated[str, Depends(admin_user)]


async def get_profiles(state: StateDep) -> ProfileService:
    return state.profiles


ProfilesDep = Annotated[ProfileService, Depends(get_profiles)]


_BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _admin_off_loopback(
    request: Request, state: AppState, credentials: HTTPAuthorizationCredentials | None
) -> None:
    """Operator pages are open on loopback; elsewhere they need an admin-scope key."""
    if state.settings.is_loopback:
        return
    principal = await get_principal(request, state, credentials)
    if "admin" not in principal.scopes:
        raise PermissionDeniedError("This API key lacks the 'admin' scope.")


async def metrics_access(request: Request, state: StateDep, credentials: _BearerDep) -> None:
    if not state.settings.metrics_public:
        await _admin_off_loopback(request, state, credentials)


async def docs_access(request: Request, state: StateDep, credentials: _BearerDep) -> None:
    if not state.settings.docs_public:
        await _admin_off_loopback(request, state, credentials)


MetricsAccessDep = Annotated[None, Depends(metrics_access)]
DocsAccessDep = Annotated[None, Depends(docs_access)]
