"""After an erasure nothing of the user is left: no row of any table, no Redis key or value."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

import server.auth.models
import server.profiles.models  # noqa: F401  (every table in the metadata)
from server.db import Base, create_engine
from server.settings import Settings
from tests.fixtures.app import Gateway, auth
from tests.fixtures.upstreams import ScriptedUpstream
from tests.server.security.helpers import chat_body, key_in_tenant, new_user, user_path


@pytest.fixture
def gateway(scripted_gateway: Gateway) -> Gateway:
    return scripted_gateway


def _reply(traits: list[str], text: str = "noted") -> list[str]:
    block = "".join(f"- {trait}\n" for trait in traits)
    return [f"<profile>\n{block}</profile>\n\n", f"<response>\n{text}\n</response>"]


async def _database_mentions(settings: Settings, needles: list[str]) -> list[str]:
    """'table: row' for every row of every table that contains one of `needles`."""
    engine = create_engine(settings)
    found = []
    try:
        async with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                for row in await connection.execute(select(table)):
                    text = json.dumps(list(row), default=str, ensure_ascii=False)
                    if any(needle in text for needle in needles):
                        found.append(f"{table.name}: {text}")
    finally:
        await engine.dispose()
    return found


async def _redis_mentions(redis: aioredis.Redis, prefix: str, needles: list[str]) -> list[str]:
    found = []
    async for raw_key in redis.scan_iter(match=f"{prefix}*"):
        kind = await redis.type(raw_key)  # bytes: the client does not decode
        if kind == b"string":
            value: object = await redis.get(raw_key)
        elif kind == b"hash":
            value = await redis.hgetall(raw_key)
        else:
            value = await redis.dump(raw_key)
        text = f"{raw_key!r} {value!r}"
        if any(needle in text for needle in needles):
            found.append(text)
    return found


async def _erase_everywhere_checked(
    gateway: Gateway, redis: aioredis.Redis, prefix: str, needles: list[str]
) -> None:
    assert await _database_mentions(gateway.settings, needles) == []
    if gateway.settings.redis_url:
        assert await _redis_mentions(redis, prefix, needles) == []


async def test_erase_leaves_nothing_of_the_user_in_any_table_or_redis(
    gateway: Gateway,
    upstream_a: ScriptedUpstream,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    user, tag = new_user("erase"), uuid.uuid4().hex[:8]
    told, learned = f"told trait {tag}", f"learned trait {tag}"
    put = await gateway.client.put(user_path(user, "/profile"), json={"traits": [told]})
    assert put.status_code == 200
    upstream_a.script.texts = _reply([told, learned])
    chat = await gateway.client.post("/v1/chat/completions", json=chat_body(user))
    assert chat.status_code == 200, chat.text
    profile = await gateway.client.get(user_path(user, "/profile"))  # fills the cache
    assert profile.json()["traits"] == [told, learned]
    needles = [user, told, learned]
    assert await _database_mentions(gateway.settings, needles)  # the scans do find them
    if gateway.settings.redis_url:
        assert await _redis_mentions(redis_client, redis_prefix, needles)

    assert (await gateway.client.delete(user_path(user))).status_code == 204

    await _erase_everywhere_checked(gateway, redis_client, redis_prefix, needles)
    assert (await gateway.client.get(user_path(user, "/profile"))).status_code == 404


async def test_a_turn_in_flight_during_the_erase_stores_nothing(
    gateway: Gateway,
    upstream_a: ScriptedUpstream,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    user, tag = new_user("inflight"), uuid.uuid4().hex[:8]
    told, learned = f"told trait {tag}", f"learned trait {tag}"
    await gateway.client.put(user_path(user, "/profile"), json={"traits": [told]})
    upstream_a.script.texts = _reply([told, learned])
    upstream_a.script.delay_s = 0.3
    turn = asyncio.create_task(
        gateway.client.post("/v1/chat/completions", json=chat_body(user, stream=True))
    )
    deadline = time.monotonic() + 10
    while not upstream_a.in_flight:  # the turn has read the profile and called the model
        assert time.monotonic() < deadline and not turn.done()
        await asyncio.sleep(0.02)
    assert (await gateway.client.delete(user_path(user))).status_code == 204
    assert (await turn).status_code == 200

    await _erase_everywhere_checked(gateway, redis_client, redis_prefix, [user, told, learned])


async def test_erase_leaves_nothing_of_the_user_in_keys_bound_to_it(
    gateway: Gateway, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    user = new_user("erase-bound")
    await gateway.client.put(user_path(user, "/profile"), json={"traits": ["t"]})
    _, bound = await key_in_tenant(gateway.settings, "default", ["chat"], user=user)
    assert (await gateway.client.delete(user_path(user))).status_code == 204
    assert (await gateway.client.get("/v1/models", headers=auth(bound))).status_code == 401
    await _erase_everywhere_checked(gateway, redis_client, redis_prefix, [user])
