"""A client that leaves while the profile block is still being written: the turn is cancelled,
the upstream stops generating, and nothing of the turn is stored."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from server.app import create_app
from tests.faults.turns import HEADERS, gateway_settings, stored_versions
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

STALL_S = 3.0  # the upstream's pause inside the profile block


@pytest.mark.parametrize("stream", [False, True])
async def test_leaving_during_the_profile_block_stores_nothing_and_stops_the_upstream(
    throwaway_pg: ThrowawayPostgres,
    throwaway_redis: ThrowawayRedis,
    upstream_a: ScriptedUpstream,
    stream: bool,
) -> None:
    upstream_a.script.respond = remembering
    upstream_a.script.stall_at, upstream_a.script.stall_s = 1, STALL_S
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    users = [f"left-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with serve(create_app(settings)) as gateway:
        for user in users:
            body = {
                "model": "scripted",
                "user": user,
                "messages": [{"role": "user", "content": "a fact never finished"}],
                "stream": stream,
            }
            async with httpx.AsyncClient(timeout=10) as http:
                request = asyncio.create_task(
                    http.post(f"{gateway}/v1/chat/completions", json=body, headers=HEADERS)
                )
                for _ in range(250):
                    if upstream_a.in_flight:
                        break
                    await asyncio.sleep(0.02)
                assert upstream_a.in_flight == 1, "the turn never reached the upstream"
                await asyncio.sleep(0.2)  # inside the block
                disconnects = upstream_a.disconnects
                request.cancel()  # the client goes away
                left = time.monotonic()
            for _ in range(50):  # the upstream counts in its own thread: poll, bounded
                if upstream_a.disconnects > disconnects:
                    break
                await asyncio.sleep(0.02)
            assert upstream_a.disconnects == disconnects + 1, "the upstream kept generating"
            assert time.monotonic() - left < 1.0
        await asyncio.sleep(STALL_S)  # past the stall, when a forgotten turn would finish
    assert await stored_versions(throwaway_pg.dsn, set(users)) == {}
