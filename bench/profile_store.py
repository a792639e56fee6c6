"""Profile store latency with N users seeded, 5 versions each: current-profile reads from Redis
and from PostgreSQL, a chat turn's version write, erasure, and the admin user list and search,
through the service layer. Prints a table; not a test.

    PYTHONPATH=. python bench/profile_store.py --users 1000000   # a fresh database, Redis db 14
    PYTHONPATH=. python bench/profile_store.py --users 10000 --samples 500

The database is created for the run and dropped after it. It is migrated to 0003, seeded in
batches by INSERT ... SELECT from generate_series (users, their versions and one audit event
each, all inside PostgreSQL), then upgraded to head, as a deployment with those users would be:
the time that upgrade takes to build 0004's indexes is printed too.
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

from server import migrate, rlpa
from server.auth import repository as auth_repository
from server.cache import NoCache, RedisCache
from server.db import create_engine, create_sessionmaker, transaction
from server.profiles import reads
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.settings import Settings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TRAITS = ["lives in Seattle", "vegetarian", "two kids", "works as a nurse", "likes hiking"]


SEED_BATCH = 100_000


async def seed(dsn: str, tenant_id: int, users: int, versions: int) -> None:
    """`users` users with `versions` versions each (version v holds v + 2 traits) and one audit
    event each, in batches of SEED_BATCH users."""
    traits = "ARRAY[" + ", ".join(f"'{t}'" for t in TRAITS) + "]"
    conn = await asyncpg.connect(dsn)
    try:
        for first in range(1, users + 1, SEED_BATCH):
            last = min(first + SEED_BATCH - 1, users)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO end_user (id, tenant_id, external_id, personalization, "
                    "current_version, created_at, last_seen_at) "
                    "SELECT u, $1, 'user-' || lpad(u::text, 7, '0'), true, $2, now(), now() "
                    "FROM generate_series($3::int, $4::int) AS u",
                    tenant_id, versions, first, last,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO profile_version "
                    "(end_user_id, version, traits, source, created_at) "
                    f"SELECT u, v, (SELECT json_agg(({traits})[1 + (u + k) % {len(TRAITS)}]) "
                    "FROM generate_series(1, v + 2) AS k), 'model', now() "
                    "FROM generate_series($1::int, $2::int) AS u, generate_series(1, $3::int) AS v",
                    first, last, versions,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO audit_event (tenant_id, at, action, target, detail) "
                    "SELECT $1, now(), 'profile.replace', 'user-' || lpad(u::text, 7, '0'), '{}' "
                    "FROM generate_series($2::int, $3::int) AS u",
                    tenant_id, first, last,
                )  # fmt: skip
            print(f"  seeded {last:,} users", flush=True)
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('end_user', 'id'), {users + 1})")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100)
    return f"| {name:<36} | {len(samples):>7} | {qs[49]:>8.2f} | {qs[98]:>8.2f} |"


def _user(i: int) -> str:
    return f"user-{i:07d}"


async def operations(
    args: argparse.Namespace, tenant: int, cached: ProfileService, uncached: ProfileService
) -> list[tuple[str, list[float]]]:
    rng = random.Random(0)
    n = args.samples
    ids = [rng.randint(1, args.users) for _ in range(n)]
    for i in ids:  # warm Redis with the users the cached reads will ask for
        await cached.get_state(tenant, _user(i))
    states = [await cached.get_state(tenant, _user(i)) for i in ids]

    async def write(k: int) -> object:
        # A chat turn's write: one new fact against the version the turn read.
        state = states[k]
        assert state is not None
        change = rlpa.ProfileChange(add=(f"fact {k}",))
        return await cached.apply_change(tenant, _user(ids[k]), state, change)

    # Every search is a page of 50; a user's number is rare (1 to 11 users match, found through
    # the trigram index), "user-0" is common (the ordered index finds a page at once), and a
    # substring nobody has must look everywhere it can.
    searches = [f"{rng.randint(1, args.users):07d}"[1:] for _ in range(n)]
    cursors = [reads.encode_cursor(_user(rng.randint(1, args.users))) for _ in range(n)]
    erased = rng.sample(range(1, args.users + 1), min(n, args.users) // 4)

    def page(k: int, cursor: str | None = None, query: str | None = None) -> Awaitable[object]:
        return cached.list_users(tenant, limit=50, cursor=cursor, query=query)

    m = n // 4
    return [
        ("read current profile (Redis)", await timed(n, lambda k: cached.get_state(tenant, _user(ids[k])))),  # noqa: E501
        ("read current profile (PostgreSQL)", await timed(n, lambda k: uncached.get_state(tenant, _user(ids[k])))),  # noqa: E501
        ("write a version (chat turn)", await timed(n, write)),
        ("erase a user", await timed(len(erased), lambda k: cached.erase(tenant, _user(erased[k])))),  # noqa: E501
        ("list users, first page", await timed(m, page)),
        ("list users, page at a cursor", await timed(m, lambda k: page(k, cursor=cursors[k]))),
        ("search users, a user's number", await timed(m, lambda k: page(k, query=searches[k]))),
        ("search users, common ('user-0')", await timed(m, lambda k: page(k, query="user-0"))),
        ("search users, no match", await timed(m, lambda k: page(k, query="nobody-has-it"))),
    ]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()

    name = f"rlpa_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(migrate.upgrade, url, "0003")
        engine = create_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
        sessionmaker = create_sessionmaker(engine)
        async with transaction(sessionmaker) as session:
            tenant = (await auth_repository.ensure_tenant(session, "bench")).id
        t0 = time.perf_counter()
        await seed(dsn, tenant, args.users, args.versions)
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        await asyncio.to_thread(migrate.upgrade, url)
        upgraded = time.perf_counter() - t0
        print(f"seeded {args.users:,} users x {args.versions} versions in {seeded:.1f} s")
        print(f"upgraded to head (0004's indexes built on them) in {upgraded:.1f} s")

        redis_cache = RedisCache(args.redis, f"bench-{name}:", ttl_s=600)
        pseudonyms = Pseudonyms(b"bench")
        cached = ProfileService(sessionmaker, redis_cache, pseudonyms)
        # No cache (as without Redis): every read goes to PostgreSQL.
        uncached = ProfileService(sessionmaker, NoCache(), pseudonyms)
        results = await operations(args, tenant, cached, uncached)
        print(f"\nprofile store, {args.users:,} users seeded (latency in ms)\n")
        print(f"| {'operation':<36} | {'samples':>7} | {'p50':>8} | {'p99':>8} |")
        print(f"|{'-' * 38}|{'-' * 9}|{'-' * 10}|{'-' * 10}|")
        for label, samples in results:
            print(row(label, samples))
        await redis_cache.aclose()
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
