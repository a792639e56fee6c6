"""Rolling upgrades: a replica serves a database one or more revisions ahead of its code when
each newer migration declared itself compatible with the revision before it (`compatible_with`,
recorded in schema_compat), and refuses, naming the migration, when one did not.

The newer revisions are written here into a copy of the migrations directory: the replica's own
code (server/migrate.py) has no file for them, as an old replica during an upgrade has none."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server import migrate
from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import create_pg_database, drop_pg_database
from tests.fixtures.upstreams import ScriptedUpstream, remembering

HEAD = migrate.head_revision()
ADD_NICKNAME = (
    'op.add_column("end_user", sa.Column("nickname", sa.String(length=64), nullable=True))',
    'op.drop_column("end_user", "nickname")',
)
# A column the old code's INSERTs do not fill and the database will not fill for them.
ADD_REQUIRED_REGION = (
    'op.add_column("end_user", sa.Column("region", sa.String(length=8), nullable=False, '
    'server_default="eu"))\n    op.alter_column("end_user", "region", server_default=None)',
    'op.drop_column("end_user", "region")',
)


@pytest.fixture
async def db_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database at this release's head."""
    name, url = await create_pg_database()
    await asyncio.to_thread(migrate.upgrade, url)
    yield url
    await drop_pg_database(name)


@pytest.fixture
def next_release(tmp_path: Path) -> Path:
    """A copy of the migrations, to which a test adds the revisions of a later release."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPT_LOCATION, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def add_migration(
    directory: Path,
    revision: str,
    down: str | None,
    steps: tuple[str, str],
    compatible_with: str | None,
) -> None:
    upgrade, downgrade = steps
    (directory / "versions" / f"{revision}_later.py").write_text(
        f'"""a later release\'s migration\n\nRevision ID: {revision}\nRevises: {down}\n"""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n"
        f"compatible_with = {compatible_with!r}\n\n\n"
        f"def upgrade() -> None:\n    {upgrade}\n\n\n"
        f"def downgrade() -> None:\n    {downgrade}\n"
    )


def migrate_with(directory: Path, url: str, revision: str = "head", down: bool = False) -> None:
    config = migrate.alembic_config(url)
    config.set_main_option("script_location", str(directory))
    (command.downgrade if down else command.upgrade)(config, revision)


async def declared(url: str) -> dict[str, str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT revision, compatible_with FROM schema_compat")
            )
            return {revision: previous for revision, previous in rows}
    finally:
        await engine.dispose()


@pytest.fixture
def gateway_settings(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> Callable[[str], Settings]:
    upstream_a.script.respond = remembering  # each turn stores its user message as a trait

    def make(url: str) -> Settings:
        return make_settings(
            database_url=url, redis=False, backend="openai", upstream_urls=[upstream_a.url]
        )

    return make


async def test_a_replica_serves_a_database_one_additive_revision_ahead(
    db_url: str, next_release: Path, gateway_settings: Callable[[str], Settings]
) -> None:
    add_migration(next_release, "9001", HEAD, ADD_NICKNAME, compatible_with=HEAD)
    await asyncio.to_thread(migrate_with, next_release, db_url)
    assert (await declared(db_url))["9001"] == HEAD

    user = f"ahead-{uuid.uuid4().hex[:8]}"
    async with running(create_app(gateway_settings(db_url))) as client:
        client.headers.update(auth())
        body = {"model": "scripted", "user": user, "messages": [{"role": "user", "content": "tea"}]}
        turn = await client.post("/v1/chat/completions", json=body)
        assert turn.status_code == 200, turn.text
        profile = await client.get(f"/admin/users/{quote(user)}/profile")
        assert (profile.json()["version"], profile.json()["traits"]) == (1, ["tea"])
        edit = await client.post(f"/admin/users/{quote(user)}/profile/traits", json={"trait": "x"})
        assert edit.status_code == 200, edit.text

    engine = create_async_engine(db_url)
    async with engine.connect() as connection:
        nickname = await connection.execute(
            text("SELECT nickname FROM end_user WHERE external_id = :user"), {"user": user}
        )
        assert nickname.scalar_one() is None  # the old code's row, the new column left alone
    await engine.dispose()

    await asyncio.to_thread(migrate_with, next_release, db_url, HEAD, True)
    assert "9001" not in await declared(db_url)


async def test_a_replica_refuses_a_database_past_a_migration_not_declared_compatible(
    db_url: str, next_release: Path, gateway_settings: Callable[[str], Settings]
) -> None:
    add_migration(next_release, "9001", HEAD, ADD_NICKNAME, compatible_with=HEAD)
    add_migration(next_release, "9002", "9001", ADD_REQUIRED_REGION, compatible_with=None)
    await asyncio.to_thread(migrate_with, next_release, db_url)
    assert "9002" not in await declared(db_url)

    with pytest.raises(migrate.SchemaMismatchError) as refused:
        async with running(create_app(gateway_settings(db_url))):
            pass
    message = str(refused.value)
    assert f"newer than this release ({HEAD})" in message
    assert "migration 9002 is not declared compatible" in message
    assert "needs every replica of an older release stopped before it runs" in message


async def test_a_declaration_names_only_the_revision_it_revises(
    db_url: str, next_release: Path
) -> None:
    before = await declared(db_url)
    add_migration(next_release, "9001", HEAD, ADD_NICKNAME, compatible_with="0001")
    with pytest.raises(ValueError, match="only the revision it revises"):
        await asyncio.to_thread(migrate_with, next_release, db_url)
    assert await declared(db_url) == before  # rolled back with the migration


def test_a_replica_behind_the_database_or_on_a_looping_chain_refuses() -> None:
    known = {"0005", "0006"}
    assert migrate.schema_problem("0006", "0006", known, {}) is None
    assert migrate.schema_problem("0008", "0006", known, {"0008": "0007", "0007": "0006"}) is None
    behind = migrate.schema_problem("0005", "0006", known, {})
    assert behind is not None and "run `rlpa db upgrade`" in behind
    broken = migrate.schema_problem("0008", "0006", known, {"0008": "0007"})
    assert broken is not None and "migration 0007 is not declared compatible" in broken
    looping = migrate.schema_problem("0008", "0006", known, {"0008": "0007", "0007": "0008"})
    assert looping is not None
    elsewhere = migrate.schema_problem("0008", "0006", known, {"0008": "0005"})
    assert elsewhere is not None


async def test_0007_is_declared_compatible_and_the_release_before_it_writes_keys(
    db_url: str,
) -> None:
    """0007 (usage and key limits) is additive: the previous release's INSERT into api_key,
    which names none of the new columns, still works and makes a key without expiry or limits
    of its own."""
    assert (await declared(db_url))["0007"] == "0006"
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO tenant (name, created_at) VALUES ('t0006', CURRENT_TIMESTAMP)")
            )
            await connection.execute(
                text(
                    "INSERT INTO api_key (tenant_id, name, secret_hash, prefix, scopes, "
                    "bound_user, created_at, revoked_at) SELECT id, 'old', 'h0006', 'rlpa-old', "
                    "'chat', NULL, CURRENT_TIMESTAMP, NULL FROM tenant WHERE name = 't0006'"
                )
            )
            row = await connection.execute(
                text(
                    "SELECT expires_at, rpm_limit, tpm_limit, last_used_at FROM api_key "
                    "WHERE secret_hash = 'h0006'"
                )
            )
            assert tuple(row.one()) == (None, None, None, None)
    finally:
        await engine.dispose()
