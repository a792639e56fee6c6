"""usage and quotas: usage_hour (requests and tokens rolled up per hour), and per-key expiry,
limits and last use

usage_hour holds one row per (tenant, hour, key, end user, model), whose counters every flush
of a replica adds to; the end user is named by their keyed pseudonym only. api_key gains
expires_at, rpm_limit, tpm_limit and last_used_at, all nullable.

Additive: replicas of the previous revision serve on a database at this one. Their INSERTs into
api_key leave the new columns null (no expiry, the gateway's limits), they never read
usage_hour, and they neither record usage nor enforce the per-key settings until replaced.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatible_with: str | None = "0006"


def upgrade() -> None:
    op.create_table(
        "usage_hour",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("hour", server.db.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("user_hash", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_usage_hour_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "hour", "key_id", "user_hash", "model", name=op.f("pk_usage_hour")
        ),
    )
    # Plain ADD COLUMN on both databases (nullable, no default): no table copy on SQLite.
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("expires_at", server.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("rpm_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_used_at", server.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # On SQLite the batch copies api_key; nothing references it, so no key is lost.
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("tpm_limit")
        batch.drop_column("rpm_limit")
        batch.drop_column("expires_at")
    op.drop_table("usage_hour")
