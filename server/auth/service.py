"""API keys: creation, hashing, lookup, the bootstrap admin key, and the auth decision."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import repository
from server.auth import schemas as s
from server.auth.models import ApiKey, Tenant
from server.db import transaction
from server.errors import AuthenticationError, BadRequestError, NotFoundError
from server.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
KEY_PREFIX_CHARS = 12
MAX_USER_CHARS = 256
_CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant_name: str
    scopes: frozenset[str]
    bound_user: str | None = None
    key_id: int | None = None  # None when auth is off


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "rlpa-" + secrets.token_urlsafe(32)


def validate_user(user: str, param: str = "user") -> str:
    """The OpenAI `user` string: 1-256 printable characters."""
    if not user or len(user) > MAX_USER_CHARS or not user.isprintable():
        raise BadRequestError(
            f"'{param}' must be 1 to {MAX_USER_CHARS} printable characters.", param=param
        )
    return user


def key_read(key: ApiKey, tenant_name: str) -> s.KeyRead:
    return s.KeyRead(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=sorted(key.scope_set),
        user=key.bound_user,
        tenant=tenant_name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


async def create_key(
    session: AsyncSession, tenant: Tenant, body: s.KeyCreate, secret: str | None = None
) -> s.KeyCreated:
    if body.user is not None:
        validate_user(body.user)
    secret = secret or new_secret()
    key = await repository.add_key(
        session,
        ApiKey(
            tenant_id=tenant.id,
            name=body.name,
            secret_hash=hash_secret(secret),
            prefix=secret[:KEY_PREFIX_CHARS],
            scopes=",".join(sorted(set(body.scopes))),
            bound_user=body.user,
        ),
    )
    return s.KeyCreated(**key_read(key, tenant.name).model_dump(), key=secret)


class Authenticator:
    """Resolves bearer keys to a principal. Auth is off only on loopback with no key anywhere."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self.enabled = True
        self.default_tenant: Tenant | None = None
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def bootstrap(self, settings: Settings) -> None:
        async with transaction(self._sessionmaker) as session:
            self.default_tenant = await repository.ensure_tenant(session, DEFAULT_TENANT)
            admin_key = settings.admin_api_key
            if admin_key is not None:
                secret = admin_key.get_secret_value()
                if await repository.get_key_by_hash(session, hash_secret(secret)) is None:
                    body = s.KeyCreate(
                        name="bootstrap (RLPA_ADMIN_API_KEY)", scopes=["admin", "chat"]
                    )
                    await create_key(session, self.default_tenant, body, secret)
            has_keys = await repository.count_active_keys(session) > 0
        if has_keys:
            self.enabled = True
        elif settings.is_loopback:
            self.enabled = False
            logger.warning(
                "Authentication is OFF: no API key is configured and the server is bound to "
                "%s only. Set RLPA_ADMIN_API_KEY (or create a key) to turn it on.",
                settings.host,
            )
        else:
            raise RuntimeError(
                f"Refusing to serve on {settings.host} without an API key: "
                "set RLPA_ADMIN_API_KEY or create one with `rlpa keys create`."
            )

    def anonymous(self) -> Principal:
        assert self.default_tenant is not None
        return Principal(
            self.default_tenant.id, self.default_tenant.name, frozenset({"chat", "admin"})
        )

    def forget(self) -> None:
        self._cache.clear()

    async def authenticate(self, secret: str | None) -> Principal:
        if secret is None:
            if not self.enabled:
                return self.anonymous()
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            principal = await self._lookup(digest)
            self._cache[digest] = (now + _CACHE_TTL_S, principal)
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        async with transaction(self._sessionmaker) as session:
            key = await repository.get_key_by_hash(session, digest)
            if key is None or key.revoked_at is not None:
                return None
            tenant = await repository.get_tenant(session, key.tenant_id)
        if tenant is None:
            return None
        return Principal(tenant.id, tenant.name, key.scope_set, key.bound_user, key.id)

    async def revoke(self, key_id: int, tenant_id: int) -> None:
        async with transaction(self._sessionmaker) as session:
            if not await repository.revoke_key(session, key_id, tenant_id):
                raise NotFoundError(f"No active key {key_id}.", param="key_id")
        self.forget()
