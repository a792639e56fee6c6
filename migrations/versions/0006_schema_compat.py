"""schema_compat: which migrations the release before them can serve (rolling upgrades)

A replica refused to serve unless the database was at exactly its own head, so the old replicas
that restarted during a rolling upgrade, after `rlpa db upgrade` had run, stopped. Now a migration
that the previous revision's code serves correctly (an additive one) declares it with a
module-level `compatible_with = "<its down_revision>"`, and migrating writes that declaration
into this table (server/migrate.py, record_compatibility). A replica whose code is older than the
database, and so has no file for the newer migrations, reads the table to decide whether it may
serve (server/migrate.py, check_schema).

Additive: replicas of the previous revision serve on a database at this one (they read nothing
of it; only replicas from this revision on tolerate newer databases).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatible_with: str | None = "0005"


def upgrade() -> None:
    op.create_table(
        "schema_compat",
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.Column("compatible_with", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_schema_compat")),
    )


def downgrade() -> None:
    op.drop_table("schema_compat")
