"""Migrations run both ways on PostgreSQL and SQLite, and match the models exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from server import migrate
from server.models import Base

TABLES = {"tenant", "api_key", "end_user", "profile_version"}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def _diff(url: str) -> list[Any]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
            )
        )
    await engine.dispose()
    return list(diff)


@pytest.fixture(params=["postgres", "sqlite"])
def empty_url(request: pytest.FixtureRequest, pg_empty_url: str, tmp_path: Path) -> str:
    return pg_empty_url if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path}/m.db"


async def test_upgrade_downgrade_upgrade_round_trips(empty_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _tables(empty_url) == TABLES
    await asyncio.to_thread(migrate.downgrade, empty_url, "base")
    assert await _tables(empty_url) == set()
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _tables(empty_url) == TABLES


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    empty_url: str,
) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await _diff(empty_url) == []
