"""Cache-aside on real Redis: read-through, replace on write, delete on erase, survive outages."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis

from server import metrics
from server.auth import repository as auth_repository
from server.cache import CachedProfile, RedisCache, cache_key
from server.db import create_engine, create_sessionmaker, transaction
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.settings import Settings
from tests.fixtures.db import REDIS_URL

PSEUDONYMS = Pseudonyms(b"cache-tests")


def _key(tenant: int, user: str) -> str:
    return cache_key(tenant, PSEUDONYMS.of(user))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of our own, so the test can kill it."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            import time

            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


async def _service(
    make_settings: Callable[..., Settings], cache: RedisCache
) -> tuple[ProfileService, int]:
    engine = create_engine(make_settings(db="postgres"))
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        tenant = await auth_repository.ensure_tenant(session, "cache-tests")
    return ProfileService(sessionmaker, cache, PSEUDONYMS), tenant.id


@pytest.fixture
async def redis_service(
    make_settings: Callable[..., Settings], redis_prefix: str
) -> AsyncIterator[tuple[ProfileService, int, aioredis.Redis]]:
    cache = RedisCache(REDIS_URL, redis_prefix, ttl_s=60)
    profiles, tenant = await _service(make_settings, cache)
    raw = aioredis.Redis.from_url(REDIS_URL)
    yield profiles, tenant, raw
    await raw.aclose()
    await cache.aclose()


async def test_read_through_fills_redis_and_write_replaces_it(
    redis_service: tuple[ProfileService, int, aioredis.Redis], redis_prefix: str
) -> None:
    profiles, tenant, raw = redis_service
    user = f"c-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["a"], source="model")
    key = redis_prefix + _key(tenant, user)
    await raw.delete(key)
    state = await profiles.get_state(tenant, user)
    assert state is not None and state.traits == ["a"]
    assert b'"a"' in (await raw.get(key) or b"")
    await profiles.append(tenant, user, ["b"], source="model")
    assert b'"b"' in (await raw.get(key) or b"")
    await profiles.erase(tenant, user)
    # An erase leaves a short-lived barrier with no profile text in it.
    barrier = await raw.get(key) or b""
    assert b'"a"' not in barrier and b'"b"' not in barrier
    assert 0 < await raw.ttl(key) <= 60
    assert await profiles.get_state(tenant, user) is None


async def test_an_older_version_never_replaces_a_newer_cache_entry(
    redis_service: tuple[ProfileService, int, aioredis.Redis],
) -> None:
    profiles, tenant, _ = redis_service
    user = f"c-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["v1"], source="model")
    await profiles.append(tenant, user, ["v2"], source="model")
    # A slow reader that loaded version 1 from the database writes it back late.
    late = CachedProfile(1, ["v1"], "model", None)
    await profiles.cache.put(_key(tenant, user), late, read_at=time.monotonic())
    state = await profiles.get_state(tenant, user)
    assert state is not None and state.traits == ["v2"]


async def test_everything_keeps_working_when_redis_dies_and_logs_once(
    own_redis: tuple[str, subprocess.Popen[bytes]],
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proc = own_redis
    cache = RedisCache(url, "t:", ttl_s=60, timeout_s=0.2)
    profiles, tenant = await _service(make_settings, cache)
    user = f"c-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["before"], source="model")
    proc.kill()
    proc.wait()
    errors_before = metrics.CACHE_ERRORS._value.get()
    with caplog.at_level(logging.WARNING, logger="server.cache"):
        for i in range(3):
            written = await profiles.append(tenant, user, [f"during {i}"], source="model")
            state = await profiles.get_state(tenant, user)
            assert state is not None and state.version == written.version
    assert metrics.CACHE_ERRORS._value.get() > errors_before
    assert sum("Redis unreachable" in r.message for r in caplog.records) == 1
    await cache.aclose()


async def test_after_an_outage_stale_entries_are_dropped(
    own_redis: tuple[str, subprocess.Popen[bytes]], make_settings: Callable[..., Settings]
) -> None:
    url, _proc = own_redis
    cache = RedisCache(url, "t:", ttl_s=60, timeout_s=0.2)
    profiles, tenant = await _service(make_settings, cache)
    user = f"c-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["old"], source="model")
    # Simulate an outage during which a write could not reach Redis.
    cache._failed(ConnectionError("simulated"))
    await profiles.append(tenant, user, ["new"], source="model")
    await asyncio.sleep(RedisCache.BACKOFF_S + 0.1)
    state = await profiles.get_state(tenant, user)
    assert state is not None and state.traits == ["new"]
    await cache.aclose()
