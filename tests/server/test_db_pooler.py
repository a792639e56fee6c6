"""The gateway behind PgBouncer in transaction mode (RLPA_DB_POOLER=transaction): no startup
parameters, no named prepared statements, the statement timeout set per transaction, and the
whole profile path (chat turns that store versions, admin reads, edits, rollback, erasure)
working while consecutive transactions land on different server connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import asyncpg
import httpx
import openai
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from server.app import create_app
from server.db import autocommit, create_engine, create_sessionmaker, transaction
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY, PG_ADMIN_DSN
from tests.fixtures.pgbouncer import SERVER_CONNECTIONS, PgBouncer
from tests.fixtures.upstreams import ScriptedUpstream, remembering


@pytest.fixture
def pooled_settings(
    make_settings: Callable[..., Settings], pg_url: str, pgbouncer: PgBouncer
) -> Callable[..., Settings]:
    """Settings of a gateway whose database URL is PgBouncer's, without Redis: every profile
    read goes to the database."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": pgbouncer.url(pg_url),
            "db_pooler": "transaction",
            "db_pool_size": 3,
            "db_max_overflow": 3,
        }
        values.update(overrides)
        return make_settings(db="postgres", redis=False, **values)

    return make


@pytest.fixture
async def pooled_gateway(
    pooled_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> AsyncIterator[tuple[httpx.AsyncClient, openai.AsyncOpenAI]]:
    upstream_a.script.respond = remembering  # each turn stores its user message as a trait
    settings = pooled_settings(backend="openai", upstream_urls=[upstream_a.url])
    async with running(create_app(settings)) as http:
        http.headers.update(auth())
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        yield http, chat


def _user_url(user: str, tail: str = "") -> str:
    return f"/admin/users/{quote(user, safe='')}{tail}"


async def _turn(chat: openai.AsyncOpenAI, user: str, fact: str) -> None:
    reply = await chat.chat.completions.create(
        model="scripted", user=user, messages=[{"role": "user", "content": fact}]
    )
    assert reply.choices[0].message.content == "ok"


async def _profile(http: httpx.AsyncClient, user: str) -> tuple[int, list[str]]:
    response = await http.get(_user_url(user, "/profile"))
    assert response.status_code == 200, response.text
    return response.json()["version"], response.json()["traits"]


async def test_pgbouncer_refuses_the_statement_timeout_as_a_startup_parameter(
    pooled_settings: Callable[..., Settings],
) -> None:
    """The fixture is the strict pooler the setting is for: without it, no connection."""
    engine = create_engine(pooled_settings(db_pooler="none"))
    try:
        with pytest.raises(sa_exc.DBAPIError, match="unsupported startup parameter"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_chat_turns_and_every_admin_change_work_through_pgbouncer(
    pooled_gateway: tuple[httpx.AsyncClient, openai.AsyncOpenAI],
) -> None:
    http, chat = pooled_gateway
    run = uuid.uuid4().hex[:8]
    # More turns at once than PgBouncer has server connections: statements of one turn, and
    # the two round trips of one statement, reach different ones.
    users = [f"pooled-{run}-{i}" for i in range(4 * SERVER_CONNECTIONS)]
    await asyncio.gather(*(_turn(chat, user, f"fact of {user}") for user in users))
    for user in users:
        assert await _profile(http, user) == (1, [f"fact of {user}"])

    ann = users[0]
    await _turn(chat, ann, "likes tea")
    await _turn(chat, ann, "lives in Lyon")
    assert await _profile(http, ann) == (3, [f"fact of {ann}", "likes tea", "lives in Lyon"])
    history = (await http.get(_user_url(ann, "/profile/history"))).json()["data"]
    assert [entry["version"] for entry in history] == [3, 2, 1]
    # The turns' usage is written through the pooler too: many rows in one upsert statement.
    usage = await http.get("/admin/usage", params={"user": ann, "group_by": "user"})
    assert usage.status_code == 200 and usage.json()["total"]["requests"] == 3, usage.text

    edits = [
        http.put(_user_url(ann, "/profile"), json={"traits": ["vegan", "runs"]}),
        http.post(_user_url(ann, "/profile/traits"), json={"trait": "reads"}),
        http.request("DELETE", _user_url(ann, "/profile/traits"), params={"trait": "runs"}),
        http.post(_user_url(ann, "/profile/rollback"), json={"version": 2}),
    ]
    for edit in edits:
        response = await edit
        assert response.status_code == 200, response.text
    assert await _profile(http, ann) == (7, [f"fact of {ann}", "likes tea"])
    exported = await http.get(_user_url(ann, "/export"))
    assert exported.status_code == 200 and len(exported.json()["versions"]) == 7

    opted_out = await http.patch(_user_url(users[1]), json={"personalization": False})
    assert opted_out.status_code == 200, opted_out.text
    await _turn(chat, users[1], "not kept")
    assert await _profile(http, users[1]) == (1, [f"fact of {users[1]}"])

    erased = await http.delete(_user_url(ann))
    assert erased.status_code == 204, erased.text
    assert (await http.get(_user_url(ann, "/profile"))).status_code == 404
    audit = await http.get("/admin/audit")
    assert audit.status_code == 200 and audit.json()["data"]


async def test_each_transaction_gets_the_statement_timeout_and_leaves_none_behind(
    pooled_settings: Callable[..., Settings],
) -> None:
    direct = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        server_default = await direct.fetchval("SHOW statement_timeout")
    finally:
        await direct.close()
    engine = create_engine(pooled_settings(db_statement_timeout_s=0.75))
    sessionmaker = create_sessionmaker(engine)
    try:
        for _ in range(2 * SERVER_CONNECTIONS):  # round robin: every server connection
            async with transaction(sessionmaker) as session:
                inside = (await session.execute(text("SHOW statement_timeout"))).scalar()
            async with autocommit(sessionmaker) as connection:
                outside = (await connection.execute(text("SHOW statement_timeout"))).scalar()
            assert (inside, outside) == ("750ms", server_default)
    finally:
        await engine.dispose()
