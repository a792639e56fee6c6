from tests.fixtures.app import admin_client, make_settings
from tests.fixtures.db import (
    pg_empty_url,
    pg_url,
    redis_client,
    redis_prefix,
    sqlite_dir,
    sqlite_url,
)

__all__ = [
    "admin_client",
    "make_settings",
    "pg_empty_url",
    "pg_url",
    "redis_client",
    "redis_prefix",
    "sqlite_dir",
    "sqlite_url",
]
