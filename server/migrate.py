"""Alembic driven from code, so `rlpa db upgrade` works from an installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

SCRIPT_LOCATION = str(Path(migrations.__file__).parent)


# Indexes that only some databases have, so the models cannot declare them: the trigram index
# for user search exists on PostgreSQL with pg_trgm only (migration 0004).
OPTIONAL_INDEXES = frozenset({"ix_end_user_external_id_trgm"})


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate compares between the models and a database: all but OPTIONAL_INDEXES."""
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
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
