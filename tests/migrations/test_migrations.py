"""Migrations run both ways on PostgreSQL and SQLite, and match the models exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from server import migrate
from server.db import create_engine
from server.models import Base
from server.settings import Settings

TABLES = {"tenant", "api_key", "end_user", "profile_version", "audit_event", "server_secret"}
TABLES |= {"usage_hour"}
TABLES |= {"schema_compat"}  # the migrations' own, as alembic_version (server/migrate.py)


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
                MigrationContext.configure(
                    c, opts={"compare_type": True, "include_object": migrate.include_object}
                ),
                Base.metadata,
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


async def test_migrating_keeps_every_profile_version(empty_url: str) -> None:
    """Memory survives migrations: users and versions written at the first revision are all
    there at head, and again after going down and up."""
    await asyncio.to_thread(migrate.upgrade, empty_url, "0001")
    engine = create_async_engine(empty_url)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO tenant (id, name, created_at) VALUES (1, 't', CURRENT_TIMESTAMP)")
        )
        for user_id in (1, 2):
            await conn.execute(
                text(
                    "INSERT INTO end_user (id, tenant_id, external_id, personalization, "
                    "current_version, created_at, last_seen_at) VALUES "
                    "(:id, 1, :ext, true, 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": user_id, "ext": f"user-{user_id}"},
            )
            for version in (1, 2):
                await conn.execute(
                    text(
                        "INSERT INTO profile_version (end_user_id, version, traits, source, "
                        "created_at) VALUES (:u, :v, :t, 'model', CURRENT_TIMESTAMP)"
                    ),
                    {"u": user_id, "v": version, "t": f'["trait {user_id}.{version}"]'},
                )

    async def versions() -> list[tuple[str, int, str]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT u.external_id, v.version, v.traits FROM profile_version v "
                    "JOIN end_user u ON u.id = v.end_user_id ORDER BY 1, 2"
                )
            )
            return [(r[0], r[1], str(r[2])) for r in rows]

    before = await versions()
    assert len(before) == 4
    # Through the gateway's own engine, as the embedded default migrates at start: SQLite
    # foreign keys are on there, so a table rebuild must not cascade.
    app_engine = create_engine(Settings(_env_file=None, database_url=empty_url))  # type: ignore[call-arg]
    await migrate.upgrade_engine(app_engine)
    await app_engine.dispose()
    assert await versions() == before
    async with engine.connect() as conn:
        actors = (await conn.execute(text("SELECT actor_key_id FROM profile_version"))).all()
    assert [row[0] for row in actors] == [None] * 4  # made before keys were recorded
    await asyncio.to_thread(migrate.downgrade, empty_url, "0001")
    assert await versions() == before
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await versions() == before
    await engine.dispose()


async def test_downgrading_the_audit_revision_keeps_admin_made_versions(empty_url: str) -> None:
    """Going back below 0003 drops the audit log and the acting key, never a profile version."""
    await asyncio.to_thread(migrate.upgrade, empty_url)
    await asyncio.to_thread(migrate.downgrade, empty_url, "base")  # what earlier tests left
    await asyncio.to_thread(migrate.upgrade, empty_url)
    engine = create_async_engine(empty_url)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO tenant (id, name, created_at) VALUES (1, 't', CURRENT_TIMESTAMP)")
        )
        await conn.execute(
            text(
                "INSERT INTO end_user (id, tenant_id, external_id, personalization, "
                "current_version, created_at, last_seen_at) VALUES "
                "(1, 1, 'u', true, 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for version, actor in ((1, None), (2, 7)):
            await conn.execute(
                text(
                    "INSERT INTO profile_version (end_user_id, version, traits, source, "
                    "actor_key_id, created_at) VALUES (1, :v, :t, 'admin', :a, CURRENT_TIMESTAMP)"
                ),
                {"v": version, "t": f'["trait {version}"]', "a": actor},
            )
        await conn.execute(
            text(
                "INSERT INTO audit_event (tenant_id, at, actor_key_id, action, target, detail) "
                "VALUES (1, CURRENT_TIMESTAMP, 7, 'profile.replace', 'u', '{}')"
            )
        )

    async def versions() -> list[tuple[int, str]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT version, traits FROM profile_version ORDER BY version")
            )
            return [(r[0], str(r[1])) for r in rows]

    before = await versions()
    await asyncio.to_thread(migrate.downgrade, empty_url, "0002")
    assert "audit_event" not in await _tables(empty_url)
    assert await versions() == before
    await asyncio.to_thread(migrate.upgrade, empty_url)
    assert await versions() == before
    await engine.dispose()
