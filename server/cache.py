"""Profile cache: Redis cache-aside when configured, an in-process LRU otherwise.

Entries carry the profile version and a write never replaces a newer entry, so a slow reader
that loaded an old version from the database cannot push it over a fresher one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Protocol

import redis.asyncio as aioredis

from server import metrics

logger = logging.getLogger(__name__)

# Set only if the stored entry is not newer than ours (compare-and-set on the version).
_PUT_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and old['version'] and tonumber(old['version']) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


# An erased user's entry is replaced by this version for a while, so that a reader which
# loaded the profile just before the erase cannot put it back (every write is compare-and-set).
ERASED_VERSION = 2**53 - 1
ERASED_TTL_S = 60


@dataclass(frozen=True)
class CachedProfile:
    version: int
    traits: list[str]
    source: str | None
    updated_at: str | None
    personalization: bool = True
    user_id: int = 0  # the end_user row this profile belongs to

    @property
    def erased(self) -> bool:
        return self.version >= ERASED_VERSION


ERASED = CachedProfile(ERASED_VERSION, [], None, None)


def user_digest(user: str) -> str:
    """An end user's id, hashed: for cache keys and log lines, which name no one."""
    return hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def cache_key(tenant_id: int, user: str) -> str:
    """The user id is hashed: cache keys name no one, before or after an erasure."""
    return f"p:{tenant_id}:{user_digest(user)}"


class ProfileCache(Protocol):
    async def get(self, key: str) -> CachedProfile | None: ...
    async def put(self, key: str, value: CachedProfile) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def tombstone(self, key: str) -> None: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


class LRUCache:
    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[str, CachedProfile] = OrderedDict()
        self._erased_until: dict[str, float] = {}

    async def get(self, key: str) -> CachedProfile | None:
        value = self._data.get(key)
        if value is None:
            return None
        if value.erased:
            if self._erased_until.get(key, 0.0) > time.monotonic():
                return None
            self._data.pop(key, None)
            self._erased_until.pop(key, None)
            return None
        self._data.move_to_end(key)
        return value

    async def put(self, key: str, value: CachedProfile) -> None:
        old = self._data.get(key)
        if old is not None and old.version > value.version:
            if not old.erased or self._erased_until.get(key, 0.0) > time.monotonic():
                return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            evicted, _ = self._data.popitem(last=False)
            self._erased_until.pop(evicted, None)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def tombstone(self, key: str) -> None:
        self._data[key] = ERASED
        self._data.move_to_end(key)
        self._erased_until[key] = time.monotonic() + ERASED_TTL_S
        while len(self._data) > self._size:
            evicted, _ = self._data.popitem(last=False)
            self._erased_until.pop(evicted, None)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._data.clear()
        self._erased_until.clear()


class RedisCache:
    """Cache-aside on Redis that degrades to "always miss" while Redis is unreachable.

    A failure is logged once per outage and counted; Redis is then left alone for a short
    back-off. Writes and erasures made during an outage could not invalidate Redis, so the first
    success after an outage drops every key under our prefix before trusting the cache again.
    """

    BACKOFF_S = 2.0

    def __init__(self, url: str, prefix: str, ttl_s: int, timeout_s: float = 0.5) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._put_script = self._redis.register_script(_PUT_IF_NEWER)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._recovering = asyncio.Lock()

    @property
    def available(self) -> bool:
        return self._down_since is None

    def _failed(self, exc: Exception) -> None:
        metrics.CACHE_ERRORS.inc()
        if self._down_since is None:
            logger.warning("Redis unreachable (%s); serving profiles from the database", exc)
            self._down_since = time.monotonic()
        self._retry_at = time.monotonic() + self.BACKOFF_S

    async def _usable(self) -> bool:
        if self._down_since is None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        async with self._recovering:
            if self._down_since is None:
                return True
            try:
                await self._purge()
            except Exception as exc:  # still down
                self._failed(exc)
                return False
            logger.warning("Redis is back; dropped cache entries written before the outage")
            self._down_since = None
            return True

    async def _purge(self) -> None:
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=f"{self._prefix}p:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self._redis.unlink(*batch)
                batch.clear()
        if batch:
            await self._redis.unlink(*batch)

    async def get(self, key: str) -> CachedProfile | None:
        if not await self._usable():
            return None
        try:
            raw = await self._redis.get(self._prefix + key)
        except Exception as exc:
            self._failed(exc)
            return None
        if raw is None:
            return None
        value = CachedProfile(**json.loads(raw))
        return None if value.erased else value

    async def put(self, key: str, value: CachedProfile) -> None:
        if not await self._usable():
            return
        try:
            await self._put_script(
                keys=[self._prefix + key],
                args=[json.dumps(asdict(value)), value.version, self._ttl_s],
            )
        except Exception as exc:
            self._failed(exc)

    async def delete(self, key: str) -> None:
        if not await self._usable():
            return
        try:
            await self._redis.delete(self._prefix + key)
        except Exception as exc:
            self._failed(exc)

    async def tombstone(self, key: str) -> None:
        if not await self._usable():
            return
        try:
            await self._redis.set(self._prefix + key, json.dumps(asdict(ERASED)), ex=ERASED_TTL_S)
        except Exception as exc:
            self._failed(exc)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def create_cache(redis_url: str | None, prefix: str, ttl_s: int, size: int) -> ProfileCache:
    if redis_url:
        return RedisCache(redis_url, prefix, ttl_s)
    return LRUCache(size)
