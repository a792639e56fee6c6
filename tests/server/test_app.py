"""Start-up, health and readiness."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import running
from tests.fixtures.db import create_pg_database, drop_pg_database


async def test_health_and_ready_report_database_and_cache(admin_client: httpx.AsyncClient) -> None:
    assert (await admin_client.get("/health")).json() == {"status": "ok"}
    ready = await admin_client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] is True and ready.json()["checks"]["cache"] is True


async def test_ready_stays_200_and_says_degraded_while_redis_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    """Chats are served from the database while Redis is away: a readiness probe that failed
    would take every replica out of service for an outage the chats survive."""
    settings = make_settings(db="sqlite", redis_url="redis://127.0.0.1:1/0")
    async with running(create_app(settings)) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "degraded" and body["checks"]["cache"] is False
        assert "cache" in body["reasons"] and body["checks"]["database"] is True
        assert (await client.get("/health")).status_code == 200


async def test_a_server_database_is_never_migrated_implicitly(
    make_settings: Callable[..., Settings],
) -> None:
    name, url = await create_pg_database()
    try:
        with pytest.raises(RuntimeError, match="rlpa db upgrade"):
            async with running(create_app(make_settings(database_url=url, auto_migrate=None))):
                pass
    finally:
        await drop_pg_database(name)


async def test_the_embedded_default_migrates_sqlite_at_start(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/new.db")  # type: ignore[call-arg]
    async with running(create_app(settings)) as client:
        assert (await client.get("/admin/users")).json() == {"data": [], "next_cursor": None}


def test_cli_help_is_fast_and_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("serve", "db", "keys"):
        assert command in out
