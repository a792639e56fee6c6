"""server_secret: a random key, made once per deployment, that keys the pseudonyms of user ids

An erased user's audit events, the profile cache's keys and the access log name the user by a
digest of the id. An unkeyed digest lets anyone who can read them confirm a guessed id, so the
digest is keyed (HMAC-SHA256) with a secret every replica shares: this table's one row, created
by the first replica that starts, unless RLPA_PSEUDONYM_KEY sets it outside the database.

Additive: replicas of the previous revision serve on a database at this one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_secret",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secret")),
    )


def downgrade() -> None:
    op.drop_table("server_secret")
