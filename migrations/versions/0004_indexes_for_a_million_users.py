"""indexes for a million users: user search by substring, and erasure's lookups

- `/admin/users?q=` matches `lower(external_id) LIKE '%q%'`: a B-tree cannot serve a substring,
  so a rare one scanned every user of the tenant. On PostgreSQL a trigram GIN index serves it
  (the pg_trgm extension, trusted since PostgreSQL 13, so a database owner may create it). Where
  pg_trgm is not available, and on SQLite, search keeps scanning: it still works, only slower.
- An erasure pseudonymizes the user's audit events (by target) and revokes the keys bound to the
  user (by bound_user): both scanned the whole tenant.

On PostgreSQL the indexes are built CONCURRENTLY: upgrading a live deployment does not block its
writes while a million rows are indexed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-18
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRGM_INDEX = "ix_end_user_external_id_trgm"
# (name, table, columns): B-tree indexes on every database, declared on the models too.
BTREE = [
    ("ix_audit_event_tenant_id_target", "audit_event", ["tenant_id", "target"]),
    ("ix_api_key_tenant_id_bound_user", "api_key", ["tenant_id", "bound_user"]),
]


def _trgm_available() -> bool:
    found = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    )
    return found.first() is not None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns in BTREE:
            op.create_index(name, table, columns)
        return
    trgm = _trgm_available()
    if trgm:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.get_context().autocommit_block():
        for name, table, columns in BTREE:
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
        if trgm:
            op.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TRGM_INDEX} ON end_user "
                "USING gin (lower(external_id) gin_trgm_ops)"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, _ in BTREE:
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {TRGM_INDEX}")
        for name, table, _ in BTREE:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    # The extension stays: other databases' objects, or an operator's, may use it.
