"""Concurrent turns of one user merge: every turn's change lands on the latest version."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import openai
import pytest

from server import migrate
from server.app import create_app
from server.settings import Settings
from tests.faults.turns import HEADERS, REQUEST_TIMEOUT_S, gateway_settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

TURNS = 50


@pytest.fixture(params=["postgres", "sqlite"])
def settings(
    request: pytest.FixtureRequest, upstream_a: ScriptedUpstream, tmp_path: Path
) -> Iterator[Settings]:
    """PostgreSQL with Redis, or a fresh SQLite file with the in-process cache. The database
    timeouts are left at their defaults: this is about merging, not about a slow database."""
    timeouts = {
        "db_connect_timeout_s": 2.0,
        "db_statement_timeout_s": 5.0,
        "db_pool_timeout_s": 2.0,
    }
    if request.param == "postgres":
        pg = request.getfixturevalue("throwaway_pg")
        redis = request.getfixturevalue("throwaway_redis")
        yield gateway_settings(upstream_a.url, pg.url, redis.url, **timeouts)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}"
        migrate.upgrade(url)
        yield gateway_settings(upstream_a.url, url, None, **timeouts)


async def test_fifty_concurrent_turns_of_one_user_keep_every_fact(
    settings: Settings, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    user = "concurrent-user"
    facts = [f"fact {i:02d}" for i in range(TURNS)]
    with serve(create_app(settings)) as gateway:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=60
        ) as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="scripted",
                        messages=[{"role": "user", "content": fact}],
                        user=user,
                        extra_body={"rlpa": {"return_profile": True}},
                    )
                    for fact in facts
                )
            )
        path = f"{gateway}/admin/users/{quote(user, safe='')}/profile"
        async with httpx.AsyncClient(headers=HEADERS, timeout=REQUEST_TIMEOUT_S) as http:
            profile = (await http.get(path)).json()
            history = (await http.get(f"{path}/history")).json()["data"]

    # The turns overlapped: some read the same stored profile, so their changes had to merge.
    prompts = {body["messages"][0]["content"] for body in upstream_a.bodies}
    assert len(prompts) < TURNS, "every turn saw its own profile version: nothing was concurrent"
    # Every turn wrote its own version: 1..50, no number twice, none skipped.
    versions = sorted((reply.model_extra or {})["rlpa"]["version"] for reply in replies)
    assert versions == list(range(1, TURNS + 1))
    assert sorted(v["version"] for v in history) == list(range(1, TURNS + 1))
    assert profile["version"] == TURNS
    assert sorted(profile["traits"]) == facts
