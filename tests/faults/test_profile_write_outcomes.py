"""What a turn's client is told when PostgreSQL is away, and what a retry then does.

- A turn that learned nothing new needs no database to write: it is answered from the cache.
- A write sent to a database that then froze may commit later: the 503 says the outcome is
  unknown (not "nothing was remembered"), and a retry with the same X-Request-Id applies the
  change at most once, whatever the frozen write did.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from server.app import create_app
from tests.faults.turns import HEADERS, REQUEST_TIMEOUT_S, chat, gateway_settings
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow


async def _versions_with(dsn: str, user: str, fact: str) -> list[tuple[int, str | None]]:
    """(version, request id) of every version of `user` whose traits hold `fact` first."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT v.version, v.request_id, v.traits::text AS traits FROM profile_version v "
            "JOIN end_user u ON u.id = v.end_user_id WHERE u.external_id = $1 ORDER BY v.version",
            user,
            timeout=5,
        )
    finally:
        await conn.close()
    added: list[tuple[int, str | None]] = []
    seen = False
    for row in rows:
        holds = fact in row["traits"]
        if holds and not seen:
            added.append((row["version"], row["request_id"]))
        seen = holds
    return added


def _turn(user: str, fact: str) -> dict[str, Any]:
    return {
        "model": "scripted",
        "user": user,
        "messages": [{"role": "user", "content": fact}],
        "rlpa": {"return_profile": True},
    }


async def test_a_turn_that_only_restates_the_profile_is_answered_while_postgres_is_down(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    user = f"restating-{uuid.uuid4().hex[:8]}"
    with serve(create_app(settings)) as gateway:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            first = await chat(http, gateway, user, "keeps bees")  # stored, and cached
            assert first.acknowledged and first.version == 1, str(first)
            throwaway_pg.stop()
            try:
                for stream in (False, True):
                    again = await chat(http, gateway, user, "keeps bees", stream=stream)
                    assert again.acknowledged and again.version == 1, str(again)
                # Something new still needs the database, and says so: not stored (refused at
                # connecting) or unknown (sent on a pooled connection as the server went away).
                new = await chat(http, gateway, user, "plays the oboe")
                assert new.status == 503, str(new)
                assert new.error is not None
                code = new.error["error"]["code"]
                assert code in ("profile_not_stored", "profile_write_unknown"), str(new)
            finally:
                throwaway_pg.start()


async def test_a_write_lost_in_a_frozen_database_is_unknown_and_its_retry_applies_once(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    user = f"frozen-{uuid.uuid4().hex[:8]}"
    fact = f"fact {uuid.uuid4().hex[:6]}"
    request_id = f"retry-{uuid.uuid4().hex}"
    headers = {**HEADERS, "X-Request-Id": request_id}
    url_path = "/v1/chat/completions"
    with serve(create_app(settings)) as gateway:
        async with httpx.AsyncClient(base_url=gateway, timeout=REQUEST_TIMEOUT_S) as http:
            # A first turn leaves the profile cached and a connection fresh in the pool, so
            # that the next turn's write is sent to the server (not refused at connecting).
            first = await chat(http, gateway, user, "first fact")
            assert first.acknowledged, str(first)
            throwaway_pg.freeze()
            try:
                lost = await http.post(url_path, json=_turn(user, fact), headers=headers)
            finally:
                throwaway_pg.thaw()
            assert lost.status_code == 503, lost.text
            error = lost.json()["error"]
            assert error["code"] == "profile_write_unknown", error
            assert (
                "unknown" in error["message"] and "Nothing was remembered" not in error["message"]
            )
            assert lost.headers["retry-after"].isdigit()

            # The frozen write may or may not commit once the server runs again; a retry with
            # the same request id is applied at most once either way.
            deadline = time.monotonic() + 15
            while True:
                retried = await http.post(url_path, json=_turn(user, fact), headers=headers)
                if retried.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert retried.status_code == 200, retried.text
            added = await _versions_with(throwaway_pg.dsn, user, fact)
            assert added == [(2, request_id)], added
            assert fact in retried.json()["rlpa"]["profile"]
            # The same id once more, as a client that retries again: still one version.
            again = await http.post(url_path, json=_turn(user, fact), headers=headers)
            assert again.status_code == 200 and again.json()["rlpa"]["version"] == 2
            assert await _versions_with(throwaway_pg.dsn, user, fact) == [(2, request_id)]
