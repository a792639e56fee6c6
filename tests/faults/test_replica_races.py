"""The races between replicas that a fast machine seldom hits, made to happen every time by
delaying one step on one replica (a slow database or cache, a paused process):

- write-behind: turn N answered on A before its write commits, N+1 on B right after;
- erasure: a request received on A reads the profile only after B's erase has committed;
- opt-out: a reader on B loaded the user before A's opt-out and fills the cache after it.

Two gateways (each its own app and event loop) on one PostgreSQL and one Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from bench.replica_faults import forgetting
from server.app import create_app
from server.settings import Settings
from tests.faults.turns import HEADERS, REQUEST_TIMEOUT_S, chat, gateway_settings, stored_versions
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering, stored_traits

pytestmark = pytest.mark.slow

DELAY_S = 0.6  # the injected slowness: well past what a turn on the other replica takes
TRIALS = 3


@contextmanager
def two_gateways(settings: Settings) -> Iterator[tuple[tuple[FastAPI, str], tuple[FastAPI, str]]]:
    with ExitStack() as stack:
        apps = [create_app(settings), create_app(settings)]
        urls = [stack.enter_context(serve(app)) for app in apps]
        yield (apps[0], urls[0]), (apps[1], urls[1])


def delay(app: FastAPI, owner: str, name: str, when: Callable[[], bool] = lambda: True) -> None:
    """Make `app.state.rlpa.<owner>.<name>` wait DELAY_S before it runs (while `when()`)."""
    target = getattr(app.state.rlpa, owner)
    real = getattr(target, name)

    async def slow(*args: Any, **kwargs: Any) -> Any:
        if when():
            await asyncio.sleep(DELAY_S)
        return await real(*args, **kwargs)

    setattr(target, name, slow)


async def _unversioned_turn(
    http: httpx.AsyncClient, gateway: str, user: str, message: str
) -> httpx.Response:
    body = {"model": "scripted", "user": user, "messages": [{"role": "user", "content": message}]}
    return await http.post(f"{gateway}/v1/chat/completions", json=body, headers=HEADERS)


async def _put_profile(http: httpx.AsyncClient, gateway: str, user: str, traits: list[str]) -> None:
    put = await http.put(
        f"{gateway}/admin/users/{quote(user)}/profile", json={"traits": traits}, headers=HEADERS
    )
    assert put.status_code == 200, put.text


async def _users_named(dsn: str, user: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM end_user WHERE external_id=$1", user))
    finally:
        await conn.close()


def _settings(
    pg: ThrowawayPostgres, redis: ThrowawayRedis, upstream: str, **extra: Any
) -> Settings:
    return gateway_settings(upstream, pg.url, redis.url, contract_version=2, **extra)


async def test_write_behind_turns_apply_in_the_order_they_were_answered_across_replicas(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = forgetting
    settings = _settings(throwaway_pg, throwaway_redis, upstream_a.url, profile_write_behind=True)
    defects = []
    with two_gateways(settings) as ((app_a, a), (_, b)):
        delay(app_a, "profiles", "apply_change")  # A's writes reach the database late
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            for trial in range(TRIALS):
                user, fact = f"order-{uuid.uuid4().hex[:8]}", f"lives in city {trial}"
                # Without asking for the version: answered before its write commits ...
                said = await _unversioned_turn(http, a, user, fact)
                assert said.status_code == 200, said.text
                # ... and the user's next turn right after, on the other replica.
                forgot = await _unversioned_turn(http, b, user, f"forget: {fact}")
                assert forgot.status_code == 200, forgot.text
                await asyncio.sleep(DELAY_S + 0.5)  # every write has ended
                versions = (await stored_versions(throwaway_pg.dsn, {user})).get(user, {})
                latest = versions[max(versions)] if versions else []
                if fact in latest:
                    defects.append(f"trial {trial}: {fact!r} kept after its forget: {versions}")
    assert not defects, f"{len(defects)} of {TRIALS}: " + "; ".join(defects)


async def test_a_request_received_before_an_erase_on_another_replica_never_recreates_the_user(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    defects = []
    with two_gateways(_settings(throwaway_pg, throwaway_redis, upstream_a.url)) as (
        (app_a, a),
        (_, b),
    ):
        delay(app_a, "profiles", "open")  # A reads the profile late after receiving a turn
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            for trial in range(TRIALS):
                user = f"fenced-{uuid.uuid4().hex[:8]}"
                await _put_profile(http, b, user, ["private"])
                turn = asyncio.create_task(chat(http, a, user, "said before the erase"))
                await asyncio.sleep(DELAY_S / 3)  # received on A, not read yet
                erased = await http.delete(f"{b}/admin/users/{quote(user)}", headers=HEADERS)
                assert erased.status_code == 204, erased.text
                assert not turn.done(), "the turn ended before the erase: no race was run"
                outcome = await turn
                assert outcome.status == 200, str(outcome)
                if await _users_named(throwaway_pg.dsn, user):
                    stored = await stored_versions(throwaway_pg.dsn, {user})
                    defects.append(f"trial {trial}: {user} recreated with {stored}")
                if "private" in str(outcome.body):
                    defects.append(f"trial {trial}: the erased profile was returned")
    assert not defects, f"{len(defects)} of {TRIALS}: " + "; ".join(defects)


async def test_an_opt_out_holds_against_a_reader_that_loaded_the_user_just_before_it(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    defects = []
    slow_fill = {"on": False}
    with two_gateways(_settings(throwaway_pg, throwaway_redis, upstream_a.url)) as (
        (_, a),
        (app_b, b),
    ):
        # B's fill of the cache, after reading the user from the database, comes late.
        delay(app_b, "cache", "put", when=lambda: slow_fill["on"])
        raw = aioredis.Redis.from_url(throwaway_redis.url)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            for trial in range(TRIALS):
                user = f"optout-{uuid.uuid4().hex[:8]}"
                path = f"/admin/users/{quote(user)}"
                await _put_profile(http, a, user, ["private"])
                prefix = app_b.state.rlpa.settings.redis_key_prefix
                for key in await raw.keys(f"{prefix}p:*"):
                    await raw.delete(key)  # nothing cached: B's next turn reads the database
                slow_fill["on"] = True
                reader = asyncio.create_task(chat(http, b, user, "hello"))
                await asyncio.sleep(DELAY_S / 3)  # B has read the user, and not cached it yet
                out = await http.patch(
                    f"{a}{path}", json={"personalization": False}, headers=HEADERS
                )
                assert out.status_code == 200, out.text
                await reader
                slow_fill["on"] = False
                upstream_a.bodies.clear()
                after = await chat(http, b, user, "what do you know about me?")
                assert after.status == 200, str(after)
                seen = stored_traits(upstream_a.bodies[-1]) if upstream_a.bodies else []
                if "private" in seen:
                    defects.append(f"trial {trial}: a turn after the opt-out was given {seen}")
        await raw.aclose()
    assert not defects, f"{len(defects)} of {TRIALS}: " + "; ".join(defects)
