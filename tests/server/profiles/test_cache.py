"""Cache-aside on real Redis: read-through, replace on write, delete on erase, survive outages."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server import metrics
from server.auth import repository as auth_repository
from server.cache import BARRIER, FILL_DEADLINE_S, RedisCache, cache_key, decode, encode
from server.db import create_engine, create_sessionmaker, transaction
from server.profiles.service import ProfileService
from server.profiles.state import ProfileState
from server.pseudonyms import Pseudonyms
from server.rlpa import ProfileChange
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
    current = await profiles.get_state(tenant, user)
    assert current is not None and current.version == 2
    late = replace(current, version=1, traits=["v1"])
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


def _start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    """redis-server persisting to `directory`, as the compose file runs it (restartable)."""
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "300 10"]
    args += ["--appendonly", "no", "--dir", directory]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis did not start")


async def test_a_redis_restarted_from_an_old_snapshot_gives_back_nothing_erased(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The snapshot holds the profile of a user erased after it was taken: neither the gateway
    that was running nor one started afterwards may read it back, and the re-registered user's
    turns are stored."""
    port = _free_port()
    proc = _start_redis(port, str(tmp_path))
    url = f"redis://127.0.0.1:{port}/0"
    cache = RedisCache(url, "snap:", ttl_s=3600, timeout_s=0.5)
    profiles, tenant = await _service(make_settings, cache)
    raw = aioredis.Redis.from_url(url)
    erased, kept = f"e-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    try:
        for user in (erased, kept):
            await profiles.append(tenant, user, [f"secret of {user}"], source="model")
        assert await raw.get(b"snap:" + _key(tenant, erased).encode())
        await raw.save()  # the snapshot, taken while both are cached
        await profiles.erase(tenant, erased)
        await raw.aclose()
        proc.kill()
        proc.wait()
        proc = _start_redis(port, str(tmp_path))  # back from the snapshot
        raw = aioredis.Redis.from_url(url)
        assert await raw.get(b"snap:" + _key(tenant, erased).encode())  # the stale entry is back
        resets = metrics.CACHE_RESETS._value.get()

        # The running gateway reconnects, sees a run of Redis it has not checked and drops the
        # entries before reading any.
        assert await profiles.get_state(tenant, erased) is None
        assert metrics.CACHE_RESETS._value.get() == resets + 1
        assert not await raw.keys(b"snap:p:*")
        state = await profiles.get_state(tenant, kept)  # refilled from the database
        assert state is not None and state.traits == [f"secret of {kept}"]

        # The user signs up again: their turns are stored, into their new row.
        fresh = await profiles.open(tenant, erased)
        assert fresh is not None and fresh.traits == []
        written = await profiles.apply_change(
            tenant, erased, fresh, ProfileChange(add=("starts over",))
        )
        assert written is not None and written.version == 1
        got = await profiles.get_state(tenant, erased)
        assert got is not None and got.traits == ["starts over"]
    finally:
        await raw.aclose()
        await cache.aclose()
        proc.kill()
        proc.wait()


async def test_a_gateway_started_on_a_restored_redis_drops_its_entries_first(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = _free_port()
    proc = _start_redis(port, str(tmp_path))
    url = f"redis://127.0.0.1:{port}/0"
    raw = aioredis.Redis.from_url(url)
    try:
        first = RedisCache(url, "snap:", ttl_s=3600)
        profiles, tenant = await _service(make_settings, first)
        user = f"e-{uuid.uuid4().hex[:8]}"
        await profiles.append(tenant, user, ["secret"], source="model")
        await raw.save()
        await profiles.erase(tenant, user)
        await first.aclose()
        await raw.aclose()
        proc.kill()
        proc.wait()
        proc = _start_redis(port, str(tmp_path))
        raw = aioredis.Redis.from_url(url)
        # A gateway that starts only now has never seen either run of Redis.
        second = RedisCache(url, "snap:", ttl_s=3600)
        profiles, tenant = await _service(make_settings, second)
        assert await profiles.get_state(tenant, user) is None
        # Its next connection to the same run trusts what it checked.
        await profiles.append(tenant, user, ["new"], source="model")
        resets = metrics.CACHE_RESETS._value.get()
        third = RedisCache(url, "snap:", ttl_s=3600)
        again, _ = await _service(make_settings, third)
        state = await again.get_state(tenant, user)
        assert state is not None and state.traits == ["new"]
        assert metrics.CACHE_RESETS._value.get() == resets
        await second.aclose()
        await third.aclose()
    finally:
        await raw.aclose()
        proc.kill()
        proc.wait()


async def test_an_opt_out_is_not_undone_by_a_reader_that_loaded_the_user_before_it(
    redis_service: tuple[ProfileService, int, aioredis.Redis],
) -> None:
    profiles, tenant, _ = redis_service
    user = f"o-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["private"], source="model")
    # A reader on another replica loads the user (same version) just before the opt-out ...
    before = await profiles.get_state(tenant, user)
    assert before is not None and before.personalization
    read_at = time.monotonic()
    await profiles.set_personalization(tenant, user, False)
    # ... and fills the cache after it: the barrier refuses the same-version entry.
    await profiles._cache_put(tenant, user, before, read_at)
    state = await profiles.get_state(tenant, user)
    assert state is not None and not state.personalization


async def test_an_entry_is_not_cached_long_after_its_read(
    redis_service: tuple[ProfileService, int, aioredis.Redis], redis_prefix: str
) -> None:
    """A reader stalled past the deadline (a paused process) cannot outlive an erasure's
    barrier and put an erased profile back."""
    profiles, tenant, raw = redis_service
    user = f"s-{uuid.uuid4().hex[:8]}"
    stale = ProfileState(
        version=1,
        traits=["erased long ago"],
        personalization=True,
        source="model",
        updated_at=None,
        user_id=1,
    )
    key = _key(tenant, user)
    await profiles.cache.put(key, stale, read_at=time.monotonic() - FILL_DEADLINE_S - 1)
    assert await raw.get(redis_prefix + key) is None
    await profiles.cache.put(key, stale, read_at=time.monotonic())
    assert await raw.get(redis_prefix + key) is not None


def test_an_entry_is_the_profile_state_as_it_is() -> None:
    state = ProfileState(
        version=3,
        traits=["likes jazz"],
        personalization=False,
        source="admin",
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        user_id=7,
    )
    assert json.loads(encode(state)) == {
        "version": 3,
        "traits": ["likes jazz"],
        "personalization": False,
        "source": "admin",
        "updated_at": "2026-01-02T03:04:05+00:00",
        "user_id": 7,
    }
    assert decode(encode(state)) == state
    assert decode(encode(BARRIER)) is None  # a barrier is read as a miss
    assert decode('{"version": 1, "traits": []}') is None  # another shape: the database answers
