"""API keys: creation, hashing, lookup, the bootstrap admin key, and the auth decision."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import metrics
from server.auth import audit, repository
from server.auth import schemas as s
from server.auth.models import ApiKey, Tenant
from server.db import transaction, utcnow
from server.errors import AuthenticationError, BadRequestError, NotFoundError, RateLimitError
from server.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
KEY_PREFIX_CHARS = 12
MAX_USER_CHARS = 256
# A wrong key is remembered only briefly and in a bounded cache: distinct wrong keys must not
# grow memory, and a key created a moment ago must start working at once.
_NEGATIVE_TTL_S = 1.0
_NEGATIVE_SIZE = 1024
_FAILURE_WINDOW_S = 60.0
_FAILURE_ADDRESSES = 10_000


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant_name: str
    scopes: frozenset[str]
    bound_user: str | None = None
    key_id: int | None = None  # None when auth is off
    expires_at: datetime | None = None
    rpm_limit: int | None = None  # None: the gateway's own limits (server/ratelimit.py)
    tpm_limit: int | None = None

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(self.key_id)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "rlpa-" + secrets.token_urlsafe(32)


def validate_user(user: str, param: str = "user") -> str:
    """The OpenAI `user` string: 1-256 printable characters, not all of them spaces."""
    if not user.strip() or len(user) > MAX_USER_CHARS or not user.isprintable():
        raise BadRequestError(
            f"'{param}' must be 1 to {MAX_USER_CHARS} printable characters, not only spaces.",
            param=param,
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
        expires_at=key.expires_at,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        last_used_at=key.last_used_at,
    )


async def create_key(
    session: AsyncSession,
    tenant: Tenant,
    body: s.KeyCreate,
    secret: str | None = None,
    actor: audit.Actor | None = None,
) -> s.KeyCreated:
    """Create a key; with an `actor`, also an audit event (that never names the bound user)."""
    if body.user is not None:
        validate_user(body.user)
    elif "profile" in body.scopes:
        raise BadRequestError(
            "A key with the 'profile' scope must be bound to a user: set 'user'.",
            param="user",
            code="profile_key_unbound",
        )
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
            expires_at=body.expires_at,
            rpm_limit=body.rpm_limit,
            tpm_limit=body.tpm_limit,
        ),
    )
    if actor is not None:
        scopes = sorted(key.scope_set)
        bound = body.user is not None
        limits = body.model_dump(mode="json", include=_LIMITS, exclude_none=True)
        await audit.record(
            session,
            tenant.id,
            actor,
            "key.create",
            str(key.id),
            scopes=scopes,
            bound=bound,
            **limits,
        )
    return s.KeyCreated(**key_read(key, tenant.name).model_dump(), key=secret)


_LIMITS = {"expires_at", "rpm_limit", "tpm_limit"}


async def update_key(
    session: AsyncSession,
    key_id: int,
    tenant_id: int | None,
    body: s.KeyUpdate,
    actor: audit.Actor,
) -> ApiKey:
    """Change a live key's name, expiry or limits (the fields sent; null clears one), audited
    with what changed. NotFoundError for a key revoked, or of another tenant."""
    key = await repository.get_key(session, key_id)
    if key is None or key.revoked_at is not None or tenant_id not in (None, key.tenant_id):
        raise NotFoundError(f"No active key {key_id}.", param="key_id")
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes:
        changes["name"] = changes["name"] or ""
    for field, value in changes.items():
        setattr(key, field, value)
    await session.flush()
    detail = body.model_dump(mode="json", exclude_unset=True, include=_LIMITS)
    await audit.record(
        session, key.tenant_id, actor, "key.update", str(key.id), fields=sorted(changes), **detail
    )
    return key


class Authenticator:
    """Resolves bearer keys to a principal.

    Authentication is off only on loopback when no key is configured and none was ever created:
    revoking keys never opens the server. While it is off, every request asks the database
    whether a key exists by now, so the first key turns it on at once on every replica, however
    it was made (another replica, `rlpa keys create`). Keys found are trusted for
    `auth_cache_ttl_s`, so a key revoked on another replica stops working here within that bound.

    Failed authentications are limited per client address, but a key that is valid is always
    served: the limit refuses only wrong keys, so a flood from one address (or everyone behind
    one NAT) cannot lock out the address's real clients.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_ttl_s: float = 5.0,
        cache_size: int = 10_000,
        failures_per_minute: int = 30,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.enabled = True
        self.default_tenant: Tenant | None = None
        self._known: TTLCache[str, Principal] = TTLCache(cache_size, cache_ttl_s)
        self._wrong: TTLCache[str, bool] = TTLCache(_NEGATIVE_SIZE, _NEGATIVE_TTL_S)
        self._failures_per_minute = failures_per_minute
        self._failures: TTLCache[str, tuple[float, int]] = TTLCache(
            _FAILURE_ADDRESSES, _FAILURE_WINDOW_S
        )
        self._checking: asyncio.Future[bool] | None = None

    async def bootstrap(self, settings: Settings) -> None:
        async with transaction(self._sessionmaker) as session:
            self.default_tenant = await repository.ensure_tenant(session, DEFAULT_TENANT)
            admin_key = settings.admin_api_key
            if admin_key is not None:
                secret = admin_key.get_secret_value()
                existing = await repository.get_key_by_hash(session, hash_secret(secret))
                if existing is None:
                    body = s.KeyCreate(
                        name="bootstrap (RLPA_ADMIN_API_KEY)", scopes=["admin", "chat"]
                    )
                    await create_key(session, self.default_tenant, body, secret)
                elif existing.revoked_at is not None:
                    logger.warning(
                        "RLPA_ADMIN_API_KEY is the key %d, revoked at %s: it stays revoked and "
                        "authentication stays on. Set a new RLPA_ADMIN_API_KEY or create a key "
                        "with `rlpa keys create`.",
                        existing.id,
                        existing.revoked_at.isoformat(),
                    )
            ever_had_keys = await repository.count_keys(session) > 0
        if admin_key is not None or ever_had_keys:
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
        """Drop every cached lookup: after a key was created or revoked through this replica."""
        self._known.clear()
        self._wrong.clear()

    def key_created(self) -> None:
        self.enabled = True  # the first key ever created turns authentication on
        self.forget()

    async def _keys_exist(self) -> bool:
        """Whether any key was ever created; concurrent requests share one query."""
        if self._checking is None:

            async def check() -> bool:
                async with transaction(self._sessionmaker) as session:
                    return await repository.count_keys(session) > 0

            self._checking = asyncio.ensure_future(check())
            self._checking.add_done_callback(lambda _: setattr(self, "_checking", None))
        return await asyncio.shield(self._checking)

    async def authenticate(self, secret: str | None, address: str | None = None) -> Principal:
        if not self.enabled:
            if not await self._keys_exist():
                # Off means off, as vLLM without --api-key: OpenAI clients always send some key.
                return self.anonymous()
            logger.warning("An API key was created: authentication is now ON")
            self.key_created()
        if secret is None:
            self._failed(address)
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        digest = hash_secret(secret)
        principal = self._known.get(digest)
        if principal is not None:
            return _unexpired(principal)
        if digest not in self._wrong:
            principal = await self._lookup(digest)
        if principal is None:
            self._wrong[digest] = True
            self._check_failures(address)
            self._failed(address)
            raise AuthenticationError("Incorrect API key provided.")
        self._known[digest] = principal
        return _unexpired(principal)

    def _check_failures(self, address: str | None) -> None:
        if address is None or self._failures_per_minute <= 0:
            return
        started, count = self._failures.get(address, (0.0, 0))
        remaining = started + _FAILURE_WINDOW_S - time.monotonic()
        if count >= self._failures_per_minute and remaining > 0:
            metrics.RATE_LIMITED.labels("auth_failures").inc()
            raise RateLimitError(
                "Too many failed authentications from this address; try again later.",
                retry_after=max(1, int(remaining) + 1),
                code="too_many_auth_failures",
            )

    def _failed(self, address: str | None) -> None:
        metrics.AUTH_FAILURES.inc()
        if address is None:
            return
        now = time.monotonic()
        started, count = self._failures.get(address, (now, 0))
        if now - started >= _FAILURE_WINDOW_S:
            started, count = now, 0
        self._failures[address] = (started, count + 1)

    async def _lookup(self, digest: str) -> Principal | None:
        async with transaction(self._sessionmaker) as session:
            key = await repository.get_key_by_hash(session, digest)
            if key is None or key.revoked_at is not None:
                return None
            tenant = await repository.get_tenant(session, key.tenant_id)
        if tenant is None:
            return None
        return Principal(
            tenant.id,
            tenant.name,
            key.scope_set,
            key.bound_user,
            key.id,
            expires_at=key.expires_at,
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
        )

    async def revoke(self, key_id: int, tenant_id: int, actor: audit.Actor) -> None:
        async with transaction(self._sessionmaker) as session:
            if not await repository.revoke_key(session, key_id, tenant_id):
                raise NotFoundError(f"No active key {key_id}.", param="key_id")
            await audit.record(session, tenant_id, actor, "key.revoke", str(key_id))
        self.forget()


def _unexpired(principal: Principal) -> Principal:
    """The principal of a key that has not expired; an expired key is refused as a wrong one
    would be, but says so (and does not count against its client's address: it is no guess)."""
    if principal.expires_at is not None and principal.expires_at <= utcnow():
        metrics.AUTH_FAILURES.inc()
        raise AuthenticationError(
            f"This API key expired at {principal.expires_at.isoformat(timespec='seconds')}.",
            code="expired_api_key",
        )
    return principal
