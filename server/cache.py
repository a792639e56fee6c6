"""Profile cache: Redis cache-aside when configured; no cache otherwise (NoCache says why).

What it promises, across replicas and restarts (README, "When something fails"):
- Entries carry the profile version and a write never replaces a newer entry, so a slow reader
  that loaded an old version from the database cannot push it over a fresher one.
- An erase or a change of personalization leaves a barrier (an entry newer than any version)
  for BARRIER_TTL_S: every reader goes to the database meanwhile, and a reader that loaded the
  user just before cannot put them back, since an entry is only written within FILL_DEADLINE_S
  of the read (or commit) it holds, well inside the barrier's life.
- A Redis that restarted (from an old snapshot, or empty) is never trusted as it comes back:
  every new connection compares the server's run id with the one our entries were validated
  under, kept in Redis itself, and entries of another run are dropped before any is read.
- While Redis is unreachable every read misses (the database answers); writes and erasures made
  meanwhile could not invalidate it, so the first success after an outage drops every entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis

from server import metrics
from server.profiles.state import ProfileState

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

BARRIER_VERSION = 2**53 - 1
BARRIER_TTL_S = 60
# An entry older than this (from its read or commit) is not written: see the module docstring.
FILL_DEADLINE_S = 10.0


BARRIER = ProfileState(
    version=BARRIER_VERSION,
    traits=[],
    personalization=True,
    source=None,
    updated_at=None,
    user_id=0,
)


def encode(state: ProfileState) -> str:
    """An entry as Redis keeps it: the state's own fields, as JSON."""
    fields = asdict(state)
    fields["updated_at"] = state.updated_at.isoformat() if state.updated_at else None
    return json.dumps(fields)


def decode(raw: str | bytes) -> ProfileState | None:
    """An entry read back; None for a barrier, or for an entry of another shape (a version of
    the gateway that cached other fields: the database answers instead)."""
    fields = json.loads(raw)
    if fields.get("version", 0) >= BARRIER_VERSION:
        return None
    try:
        updated = fields["updated_at"]
        fields["updated_at"] = datetime.fromisoformat(updated) if updated else None
        return ProfileState(**fields)
    except (KeyError, TypeError, ValueError):
        return None


def cache_key(tenant_id: int, pseudonym: str) -> str:
    """A user's entry, named by their pseudonym (server/pseudonyms.py): keys name no one."""
    return f"p:{tenant_id}:{pseudonym}"


def _stale(read_at: float) -> bool:
    return time.monotonic() - read_at > FILL_DEADLINE_S


class ProfileCache(Protocol):
    # True when every replica sees the same cache (Redis): write-behind can then order a
    # user's turns across replicas (begin_write), not only within this process.
    shared: bool

    async def get(self, key: str) -> ProfileState | None: ...
    async def put(self, key: str, value: ProfileState, *, read_at: float) -> None: ...
    async def invalidate(self, key: str) -> None: ...
    async def begin_write(self, key: str, token: str, ttl_s: float) -> bool: ...
    async def end_write(self, key: str, token: str) -> None: ...
    async def writes_pending(self, key: str) -> bool: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


class NoCache:
    """Without Redis nothing is cached: every read asks the database, the one store that every
    process (replicas, `rlpa users`) sees. A per-process copy would keep serving a profile that
    another process erased, changed or opted out; one indexed read per turn is its whole cost.
    Write-behind ordering is then the chat service's, within one process."""

    shared = False

    async def get(self, key: str) -> ProfileState | None:
        return None

    async def put(self, key: str, value: ProfileState, *, read_at: float) -> None:
        return None

    async def invalidate(self, key: str) -> None:
        return None

    async def begin_write(self, key: str, token: str, ttl_s: float) -> bool:
        return True

    async def end_write(self, key: str, token: str) -> None:
        return None

    async def writes_pending(self, key: str) -> bool:
        return False

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class RedisUnverifiedError(aioredis.RedisError):
    """Redis could not be checked for a restart (INFO refused): its entries are not trusted."""


class RedisCache:
    """Cache-aside on Redis that degrades to "always miss" while Redis is unreachable.

    A failure is logged once per outage and counted; Redis is then left alone for a short
    back-off. Writes and erasures made during an outage could not invalidate Redis, so the first
    success after an outage drops every key under our prefix before trusting the cache again.
    """

    shared = True
    BACKOFF_S = 2.0

    def __init__(self, url: str, prefix: str, ttl_s: int, timeout_s: float = 0.5) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            redis_connect_func=self._on_connect,
        )
        self._prefix = prefix
        self._epoch_key = f"{prefix}epoch"
        self._ttl_s = ttl_s
        self._put_script = self._redis.register_script(_PUT_IF_NEWER)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._recovering = asyncio.Lock()

    @property
    def available(self) -> bool:
        return self._down_since is None

    async def _on_connect(self, connection: Any) -> None:
        """Runs on every new connection, before any command of ours: the only way to see a
        Redis that restarted while no connection was open, or between two commands."""
        await connection.on_connect()
        await connection.send_command("INFO", "server")
        info = await connection.read_response()
        run_id = _field(info, "run_id")
        if run_id is None:
            raise RedisUnverifiedError("INFO server gave no run_id")
        await connection.send_command("GET", self._epoch_key)
        epoch = await connection.read_response()
        if epoch is not None and epoch.decode() == run_id:
            return
        # Entries written under another run of Redis (or before this prefix was checked):
        # whatever a snapshot brought back may name an erased user, or an opted-out one.
        dropped = await _drop_entries(connection, self._prefix)
        await connection.send_command("SET", self._epoch_key, run_id)
        await connection.read_response()
        metrics.CACHE_RESETS.inc()
        logger.warning(
            "Redis run %s was not checked yet (restarted, or new): dropped %d cached entries",
            run_id[:8],
            dropped,
        )

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
        for pattern in _patterns(self._prefix):
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                await self._redis.unlink(*batch)

    async def get(self, key: str) -> ProfileState | None:
        if not await self._usable():
            return None
        try:
            raw = await self._redis.get(self._prefix + key)
        except Exception as exc:
            self._failed(exc)
            return None
        return None if raw is None else decode(raw)

    async def put(self, key: str, value: ProfileState, *, read_at: float) -> None:
        if _stale(read_at) or not await self._usable():
            return
        try:
            await self._put_script(
                keys=[self._prefix + key],
                args=[encode(value), value.version, self._ttl_s],
            )
        except Exception as exc:
            self._failed(exc)

    async def invalidate(self, key: str) -> None:
        if not await self._usable():
            return
        try:
            await self._redis.set(self._prefix + key, encode(BARRIER), ex=BARRIER_TTL_S)
        except Exception as exc:
            self._failed(exc)

    def _marker(self, key: str) -> str:
        return f"{self._prefix}w:{key}"

    async def begin_write(self, key: str, token: str, ttl_s: float) -> bool:
        """Mark a write of the user's as in flight, for every replica to see; False if Redis
        could not record it (the caller then waits for the write itself)."""
        if not await self._usable():
            return False
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self._marker(key), token)
                pipe.pexpire(self._marker(key), int(ttl_s * 1000))
                await pipe.execute()
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    async def end_write(self, key: str, token: str) -> None:
        try:
            await self._redis.srem(self._marker(key), token)
        except Exception as exc:  # the marker expires by itself
            self._failed(exc)

    async def writes_pending(self, key: str) -> bool:
        if not await self._usable():
            return False
        try:
            return bool(await self._redis.exists(self._marker(key)))
        except Exception as exc:
            self._failed(exc)
            return False

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def _patterns(prefix: str) -> tuple[str, str]:
    """Our entries and write markers; not the epoch, nor the rate limiter's counters."""
    return f"{prefix}p:*", f"{prefix}w:*"


def _field(info: Any, name: str) -> str | None:
    """A field of INFO's text (a dict when the client parses it)."""
    if isinstance(info, dict):
        value = info.get(name)
        return None if value is None else str(value)
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return None


async def _drop_entries(connection: Any, prefix: str) -> int:
    """SCAN and UNLINK our keys on a raw connection (inside the connect hook, where the client
    itself cannot be used yet)."""
    dropped = 0
    for pattern in _patterns(prefix):
        cursor = b"0"
        while True:
            await connection.send_command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            cursor, keys = await connection.read_response()
            if keys:
                await connection.send_command("UNLINK", *keys)
                dropped += int(await connection.read_response())
            if cursor in (b"0", 0, "0"):
                break
    return dropped


def create_cache(redis_url: str | None, prefix: str, ttl_s: int) -> ProfileCache:
    if redis_url:
        return RedisCache(redis_url, prefix, ttl_s)
    return NoCache()
