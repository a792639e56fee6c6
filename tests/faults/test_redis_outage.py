"""Redis going away under load costs nothing but cache hits."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from server.app import create_app
from server.cache import cache_key
from tests.faults.turns import (
    REQUEST_TIMEOUT_S,
    chat,
    gateway_settings,
    lost_acknowledged_turns,
    started_between,
    under_load,
)
from tests.fixtures.app import pseudonyms_of
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering, stored_traits

pytestmark = pytest.mark.slow

PLANTED = "planted in the cache by the test"


async def _tenant_of(dsn: str, user: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return int(
            await conn.fetchval("SELECT tenant_id FROM end_user WHERE external_id = $1", user)
        )
    finally:
        await conn.close()


async def test_chats_survive_redis_stopping_and_restarting_under_load(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    marks: dict[str, float] = {}

    async def outage() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(throwaway_redis.stop)
        marks["stopped"] = time.monotonic()
        try:
            await asyncio.sleep(2.5)
        finally:
            await asyncio.to_thread(throwaway_redis.start)
            marks["started"] = time.monotonic()
        await asyncio.sleep(3.0)  # past the cache's back-off, so it is retried and trusted again

    with serve(create_app(settings)) as gateway:
        outcomes = await under_load(gateway, "redis", outage)

        failed = [str(o) for o in outcomes if not o.acknowledged]
        assert not failed, "\n".join(failed)
        during = started_between(outcomes, marks["stopped"], marks["started"])
        assert len(during) >= 4, "the clients hardly ran while Redis was down"
        lost = await lost_acknowledged_turns(throwaway_pg.dsn, outcomes)
        assert not lost, "\n".join(lost)

        # The cache is written again: a new user's turn leaves its profile in Redis ...
        raw = aioredis.Redis.from_url(throwaway_redis.url)
        try:
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
                entry = key = user = None
                deadline = time.monotonic() + 10
                while entry is None and time.monotonic() < deadline:
                    user = f"redis-after-{time.monotonic_ns()}"
                    first = await chat(http, gateway, user, "first fact after the outage")
                    assert first.acknowledged, str(first)
                    tenant = await _tenant_of(throwaway_pg.dsn, user)
                    pseudonym = (await pseudonyms_of(settings)).of(user)
                    key = settings.redis_key_prefix + cache_key(tenant, pseudonym)
                    entry = await raw.get(key)
                    if entry is None:
                        await asyncio.sleep(0.5)
                assert entry is not None and key is not None and user is not None
                cached = json.loads(entry)
                assert cached["version"] == first.version
                # ... and read: what Redis holds is what the next turn's prompt shows.
                cached["traits"].append(PLANTED)
                await raw.set(key, json.dumps(cached), keepttl=True)
                second = await chat(http, gateway, user, "second fact after the outage")
            assert second.acknowledged, str(second)
            assert PLANTED in stored_traits(upstream_a.bodies[-1])
        finally:
            await raw.aclose()
