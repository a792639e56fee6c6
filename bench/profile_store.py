"""Profile store latency with N users seeded: current-profile reads from Redis and from
PostgreSQL, and version writes. Prints a table; not a test.

    python bench/profile_store.py            # 100,000 users, a fresh database, Redis db 14
    python bench/profile_store.py --users 10000 --samples 500
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from server import migrate
from server.auth import repository as auth_repository
from server.cache import LRUCache, RedisCache
from server.db import create_engine, create_sessionmaker, transaction
from server.profiles.service import ProfileService
from server.settings import Settings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TRAITS = ["lives in Seattle", "vegetarian", "two kids", "works as a nurse", "likes hiking"]


async def seed(dsn: str, tenant_id: int, users: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "end_user",
            columns=[
                "id",
                "tenant_id",
                "external_id",
                "personalization",
                "current_version",
                "created_at",
                "last_seen_at",
            ],
            records=[
                (i, tenant_id, f"user-{i}", True, 1, _now(), _now()) for i in range(1, users + 1)
            ],
        )
        await conn.copy_records_to_table(
            "profile_version",
            columns=["id", "end_user_id", "version", "traits", "source", "created_at"],
            records=[(i, i, 1, _traits_json(i), "model", _now()) for i in range(1, users + 1)],
        )
        for table in ("end_user", "profile_version"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {users + 1})"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _traits_json(i: int) -> str:
    import json

    return json.dumps(random.Random(i).sample(TRAITS, 3))


async def timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100)
    return f"| {name:<32} | {len(samples):>7} | {qs[49]:>8.2f} | {qs[98]:>8.2f} |"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()

    name = f"rlpa_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        sessionmaker = create_sessionmaker(engine)
        async with transaction(sessionmaker) as session:
            tenant = (await auth_repository.ensure_tenant(session, "bench")).id
        t0 = time.perf_counter()
        await seed(dsn, tenant, args.users)
        print(f"seeded {args.users:,} users in {time.perf_counter() - t0:.1f}s")

        redis_cache = RedisCache(args.redis, f"bench-{name}:", ttl_s=600)
        cached = ProfileService(sessionmaker, redis_cache)
        # A cache that never holds anything: every read goes to PostgreSQL.
        uncached = ProfileService(sessionmaker, LRUCache(0))
        rng = random.Random(0)
        ids = [rng.randint(1, args.users) for _ in range(args.samples)]
        for i in ids:  # warm Redis with the users the cached reads will ask for
            await cached.get_state(tenant, f"user-{i}")

        results = [
            (
                "read current profile (Redis)",
                await timed(args.samples, lambda k: cached.get_state(tenant, f"user-{ids[k]}")),
            ),
            (
                "read current profile (Postgres)",
                await timed(args.samples, lambda k: uncached.get_state(tenant, f"user-{ids[k]}")),
            ),
            (
                "write new version",
                await timed(
                    args.samples,
                    lambda k: cached.append(tenant, f"user-{ids[k]}", [f"t{k}"], source="model"),
                ),
            ),
        ]
        print(f"\nprofile store, {args.users:,} users seeded (latency in ms)\n")
        print(f"| {'operation':<32} | {'samples':>7} | {'p50':>8} | {'p99':>8} |")
        print(f"|{'-' * 34}|{'-' * 9}|{'-' * 10}|{'-' * 10}|")
        for label, samples in results:
            print(row(label, samples))
        await redis_cache.aclose()
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
