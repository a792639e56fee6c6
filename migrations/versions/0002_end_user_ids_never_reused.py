"""end_user ids are never reused on SQLite (AUTOINCREMENT)

A chat turn writes to the user row it read; an erase deletes that row. SQLite, unlike
PostgreSQL's sequences, hands the highest deleted rowid to the next insert unless the table is
AUTOINCREMENT, so a turn of an erased user could otherwise write into a newer user's row.
PostgreSQL needs nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild_end_user(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The rebuild drops and renames end_user; with foreign keys on, dropping it would cascade
    # to every profile version. The pragma takes effect because SQLite DDL runs outside a
    # transaction here; the data test in tests/migrations checks versions survive.
    op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table(
        "end_user", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    op.execute("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    _rebuild_end_user(True)


def downgrade() -> None:
    _rebuild_end_user(False)
