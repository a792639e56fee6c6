"""Alembic driven from code, so `rlpa db upgrade` works from an installed package."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import migrations

SCRIPT_LOCATION = str(Path(migrations.__file__).parent)
logger = logging.getLogger(__name__)

# Rolling upgrades. A migration that the code of the revision before it serves correctly (an
# additive one: docs/deploy.md, Upgrades) says so in its file, `compatible_with = "<its
# down_revision>"`, and migrating records that here. A replica whose code is older than the
# database has no file for the newer migrations: it reads this table instead (check_schema).
# Like alembic_version, the table is the migrations' own, not a model.
COMPAT_TABLE = sa.Table(
    "schema_compat",
    sa.MetaData(),
    sa.Column("revision", sa.String(32), primary_key=True),
    sa.Column("compatible_with", sa.String(32), nullable=False),
)
COMPAT_SINCE = "0006"  # the migration that made the table


class SchemaMismatchError(RuntimeError):
    """The database's revision is one this code cannot serve; the message says what to do."""


# Indexes that only some databases have, so the models cannot declare them: the trigram index
# for user search exists on PostgreSQL with pg_trgm only (migration 0004).
OPTIONAL_INDEXES = frozenset({"ix_end_user_external_id_trgm"})


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate compares between the models and a database: all but OPTIONAL_INDEXES
    and COMPAT_TABLE."""
    if type_ == "table":
        return name != COMPAT_TABLE.name
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url:
        config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate through an existing engine (the embedded default migrates at start)."""

    def _run(connection: object) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    # A connection without a transaction of ours: Alembic begins and commits its own, and may
    # step out of it (migration 0004 builds indexes CONCURRENTLY, outside any transaction).
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def record_compatibility(
    ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
) -> None:
    """Alembic's on_version_apply hook (migrations/env.py), in the migration's transaction:
    COMPAT_TABLE gets a row for each migration applied that declares `compatible_with`, and
    loses it when the migration is reverted."""
    script = step.up_revision
    declared = getattr(getattr(script, "module", None), "compatible_with", None)
    if step.is_stamp or script is None or declared is None:
        return
    if declared != script.down_revision:
        raise ValueError(
            f"Migration {script.revision} declares compatible_with = {declared!r}: only the "
            f"revision it revises, {script.down_revision!r}, can be named."
        )
    if step.is_upgrade:
        ctx.impl.execute(
            COMPAT_TABLE.insert().values(revision=script.revision, compatible_with=declared)
        )
    elif script.revision != COMPAT_SINCE:  # reverting that one dropped the table
        ctx.impl.execute(COMPAT_TABLE.delete().where(COMPAT_TABLE.c.revision == script.revision))


async def check_schema(connection: AsyncConnection) -> str:
    """The database's revision, if this code may serve it: its own head, or a newer revision
    that every migration since the head declared compatible with the one before it. Otherwise
    SchemaMismatchError, saying what to run or which migration needs the older replicas gone."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None, "no migrations"
    known = {script.revision for script in scripts.walk_revisions()}
    try:
        current = (
            await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        ).scalar()
    except Exception as exc:
        raise SchemaMismatchError(
            f"The database is not migrated ({exc.__class__.__name__}); run `rlpa db upgrade`."
        ) from exc
    compat: dict[str, str] = {}
    if current is not None and current not in known:
        try:
            rows = await connection.execute(
                sa.select(COMPAT_TABLE.c.revision, COMPAT_TABLE.c.compatible_with)
            )
            compat = {revision: previous for revision, previous in rows}
        except sa.exc.DBAPIError:  # no such table: nothing was declared compatible
            pass
    problem = schema_problem(current, head, known, compat)
    if problem is not None:
        raise SchemaMismatchError(problem)
    if current != head:
        logger.warning(
            "The database is at revision %s, ahead of this release's %s by migrations that "
            "declare it compatible: serving. Upgrade this replica.",
            current,
            head,
        )
    return str(current)


def schema_problem(
    current: str | None, head: str, known: set[str], compat: Mapping[str, str]
) -> str | None:
    """Why code at `head` (whose migrations are `known`) cannot serve a database at `current`,
    given the recorded declarations `compat` (revision -> the revision it is compatible with);
    None when it can."""
    if current == head:
        return None
    if current is None:
        return "The database is not migrated; run `rlpa db upgrade`."
    if current in known:
        return (
            f"The database is at revision {current}, this release needs {head}: "
            "run `rlpa db upgrade`."
        )
    revision, seen = current, {current}
    while revision != head:
        previous = compat.get(revision)
        # Not declared, or a chain that passes the head by (another branch) or loops.
        if previous is None or (previous in known and previous != head) or previous in seen:
            return (
                f"The database is at revision {current}, newer than this release ({head}), and "
                f"migration {revision} is not declared compatible with the revision before it "
                f"(it is not additive): this replica cannot serve it. Run the release that "
                f"migrated the database to {current}. A migration like {revision} needs every "
                "replica of an older release stopped before it runs (docs/deploy.md, Upgrades)."
            )
        revision = previous
        seen.add(revision)
    return None
