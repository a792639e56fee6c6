"""An erase during a turn wins: the turn writes nothing and the user's key is dead."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from server.app import create_app
from tests.faults.turns import HEADERS, REQUEST_TIMEOUT_S, chat, gateway_settings
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

STALL_S = 2.0  # the upstream's pause inside the profile block


async def _rows(dsn: str, user: str, user_id: int) -> tuple[int, int]:
    """(end_user rows named `user`, profile_version rows of the erased row `user_id`)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        users = await conn.fetchval("SELECT count(*) FROM end_user WHERE external_id = $1", user)
        versions = await conn.fetchval(
            "SELECT count(*) FROM profile_version WHERE end_user_id = $1", user_id
        )
    finally:
        await conn.close()
    return int(users), int(versions)


async def _user_id(dsn: str, user: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return int(await conn.fetchval("SELECT id FROM end_user WHERE external_id = $1", user))
    finally:
        await conn.close()


async def test_a_user_erased_during_a_turn_stays_erased(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    user = f"erased-{time.monotonic_ns()}"
    path = f"/admin/users/{quote(user, safe='')}"
    with serve(create_app(settings)) as gateway:
        async with httpx.AsyncClient(
            base_url=gateway, headers=HEADERS, timeout=REQUEST_TIMEOUT_S
        ) as admin:
            before = await chat(admin, gateway, user, "fact before the erase")
            assert before.acknowledged and before.version == 1, str(before)
            created = await admin.post("/admin/keys", json={"scopes": ["chat"], "user": user})
            assert created.status_code == 201, created.text
            key = created.json()["key"]
            user_id = await _user_id(throwaway_pg.dsn, user)

            # A turn of the user's own key stalls inside its profile block ...
            upstream_a.script.stall_at, upstream_a.script.stall_s = 1, STALL_S
            turn = asyncio.create_task(
                chat(admin, gateway, user, "fact during the erase", stream=True, key=key)
            )
            for _ in range(250):  # the upstream counts in its own thread: poll, bounded
                if upstream_a.in_flight:
                    break
                await asyncio.sleep(0.02)
            assert upstream_a.in_flight == 1, "the turn never reached the upstream"
            # ... while the user is erased.
            erased = await admin.delete(path)
            assert erased.status_code == 204, erased.text
            assert not turn.done(), "the turn ended before the erase: no race was run"
            during = await asyncio.wait_for(turn, REQUEST_TIMEOUT_S)
            upstream_a.script.stall_at, upstream_a.script.stall_s = -1, 0.0

            # The turn may end well for its client, but must not claim a stored version nor
            # hand back anything of the erased profile.
            assert during.version in (None, 0), str(during)
            assert "fact before the erase" not in str(during.body), str(during)
            assert (await admin.get(f"{path}/profile")).status_code == 404
            assert await _rows(throwaway_pg.dsn, user, user_id) == (0, 0)

            # The key bound to the erased user is dead, and using it brings nobody back.
            for stream in (False, True):
                late = await chat(
                    admin, gateway, user, "fact after the erase", stream=stream, key=key
                )
                assert late.status == 401, str(late)
            assert (await admin.get(f"{path}/profile")).status_code == 404
            assert await _rows(throwaway_pg.dsn, user, user_id) == (0, 0)
