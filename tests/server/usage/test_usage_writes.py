"""Usage writes never cost a turn: with the rollup table gone the turns are served all the same,
the failure is logged and counted, and the counts held are written once the table is back;
counts still held when the gateway stops are written as it stops. And `rlpa usage` prints what
was written."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server import cli, migrate
from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.upstreams import ScriptedUpstream
from tests.server.security.helpers import chat_body


@pytest.fixture
async def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database: str, upstream_a: ScriptedUpstream
) -> Settings:
    return make_settings(
        database_url=database,
        redis=False,
        backend="openai",
        upstream_urls=[upstream_a.url],
        usage_flush_s=0.05,
    )


async def _sql(url: str, statement: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement))
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def _failures() -> float:
    return REGISTRY.get_sample_value("rlpa_usage_write_failures_total") or 0.0


async def test_turns_are_served_while_usage_cannot_be_written_and_counted_after(
    settings: Settings, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    failures = _failures()
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        await _sql(database, "ALTER TABLE usage_hour RENAME TO usage_hour_away")
        with caplog.at_level(logging.WARNING, logger="server.usage"):
            usages = []
            for _ in range(3):
                turn = await client.post("/v1/chat/completions", json=chat_body("ann"))
                assert turn.status_code == 200, turn.text
                usages.append(turn.json()["usage"])
            for _ in range(250):  # the background flush meets the missing table
                if _failures() > failures:
                    break
                await asyncio.sleep(0.02)
        assert _failures() > failures
        assert any("usage not written" in r.getMessage() for r in caplog.records)

        await _sql(database, "ALTER TABLE usage_hour_away RENAME TO usage_hour")
        report = (await client.get("/admin/usage", params={"group_by": "user"})).json()
    assert report["total"]["requests"] == 3
    assert report["total"]["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert report["total"]["completion_tokens"] == sum(u["completion_tokens"] for u in usages)


async def test_counts_still_held_are_written_when_the_gateway_stops(
    make_settings: Callable[..., Settings], database: str, upstream_a: ScriptedUpstream
) -> None:
    settings = make_settings(
        database_url=database,
        redis=False,
        backend="openai",
        upstream_urls=[upstream_a.url],
        usage_flush_s=3600,
    )
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        turn = await client.post("/v1/chat/completions", json=chat_body(None))
        assert turn.status_code == 200
        assert await _sql(database, "SELECT requests FROM usage_hour") == []
    assert await _sql(database, "SELECT requests, prompt_tokens FROM usage_hour") == [
        (1, turn.json()["usage"]["prompt_tokens"])
    ]


async def test_rlpa_usage_prints_the_rollup_as_a_table_and_as_json(
    settings: Settings,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        made = await client.post("/admin/keys", json={"name": "ci", "scopes": ["chat"]})
        key_id, key = made.json()["id"], made.json()["key"]
        headers = auth(key)
        for user in ("ann", "ann", "bob"):
            turn = await client.post("/v1/chat/completions", json=chat_body(user), headers=headers)
            assert turn.status_code == 200
        api = (await client.get("/admin/usage", params={"group_by": "key,user"})).json()
    monkeypatch.setenv("RLPA_DATABASE_URL", database)
    monkeypatch.delenv("RLPA_PSEUDONYM_KEY", raising=False)

    async def rlpa(*words: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(words))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await rlpa("usage", "--group-by", "key,user", "--json")
    assert code == 0 and json.loads(out)["data"] == api["data"]
    code, out, _ = await rlpa("usage", "--key", str(key_id), "--user", "ann", "--group-by", "key")
    header, row, total = out.splitlines()
    assert header.split() == ["KEY", "KEY", "NAME", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL"]
    ann = [r for r in api["data"] if r["key_id"] == key_id and r["requests"] == 2]
    (expected,) = ann
    counts = [expected[k] for k in ("requests", "prompt_tokens", "completion_tokens")]
    assert row.split() == [str(key_id), "ci", *map(str, counts), str(expected["total_tokens"])]
    assert total.split()[0] == "total" and total.split()[1:] == row.split()[2:]

    assert (await rlpa("usage", "--tenant", "nobody"))[0] == 1
    assert (await rlpa("usage", "--group-by", "week"))[0] == 2


async def test_rlpa_keys_sets_expiry_and_limits(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLPA_DATABASE_URL", database)

    async def rlpa(*words: str) -> tuple[int, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(words))
        return code, capsys.readouterr().out

    code, out = await rlpa("keys", "create", "--rpm", "30", "--expires", "2031-01-31")
    created = json.loads(out.split("\n}", 1)[0] + "\n}")
    assert code == 0 and created["rpm_limit"] == 30 and created["tpm_limit"] is None
    assert created["expires_at"].startswith("2031-01-31T00:00:00")
    code, out = await rlpa(
        "keys",
        "update",
        str(created["id"]),
        "--tpm",
        "1000",
        "--rpm",
        "default",
        "--expires",
        "never",
    )
    updated = json.loads(out)
    assert code == 0 and (updated["tpm_limit"], updated["rpm_limit"], updated["expires_at"]) == (
        1000,
        None,
        None,
    )
    assert (await rlpa("keys", "update", "999999", "--rpm", "1"))[0] == 1
