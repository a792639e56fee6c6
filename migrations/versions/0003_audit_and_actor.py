"""audit trail: audit_event, and the API key behind each admin-made profile version

profile_version.actor_key_id has no foreign key: revoking or deleting a key must never touch the
history it made. Adding a column keeps every existing version (it is null for them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profile_version") as batch:
        batch.add_column(sa.Column("actor_key_id", sa.Integer(), nullable=True))
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("at", server.db.UTCDateTime(), nullable=False),
        sa.Column("actor_key_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=256), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_audit_event_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_tenant_id_id", "audit_event", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_tenant_id_id", table_name="audit_event")
    op.drop_table("audit_event")
    # On SQLite the batch copies profile_version; nothing references it, so no version is lost
    # (tests/migrations checks they all survive).
    with op.batch_alter_table("profile_version") as batch:
        batch.drop_column("actor_key_id")
