"""The profile service against the real databases: versions, concurrency, erasure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, select

from server.auth import repository as auth_repository
from server.cache import NoCache
from server.db import create_engine, create_sessionmaker, transaction, utcnow
from server.profiles.models import EndUser, ProfileVersion
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.rlpa import ProfileChange
from server.settings import Settings


@pytest.fixture(params=["postgres", "sqlite"])
async def service(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[ProfileService, int]]:
    engine = create_engine(make_settings(db=request.param, redis=False))
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        tenant = await auth_repository.ensure_tenant(session, "svc-tests")
    yield ProfileService(sessionmaker, NoCache(), Pseudonyms(b"test")), tenant.id
    await engine.dispose()


async def test_concurrent_writers_get_consecutive_versions_and_lose_nothing(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"busy-{uuid.uuid4().hex[:8]}"
    writers = 24
    results = await asyncio.gather(
        *(profiles.append(tenant, user, [f"trait {i}"], source="model") for i in range(writers))
    )
    assert sorted(r.version for r in results) == list(range(1, writers + 1))
    history = await profiles.history(tenant, user)
    assert [v.version for v in history.data] == list(range(writers, 0, -1))
    assert sorted(v.traits[0] for v in history.data) == sorted(f"trait {i}" for i in range(writers))


async def test_current_profile_is_the_newest_version(service: tuple[ProfileService, int]) -> None:
    profiles, tenant = service
    user = f"u-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["a"], source="model", model_name="m", request_id="r1")
    await profiles.append(tenant, user, ["a", "b"], source="user")
    state = await profiles.get_state(tenant, user)
    assert state is not None and (state.version, state.traits) == (2, ["a", "b"])
    export = await profiles.export(tenant, "svc-tests", user)
    assert export.versions[0].model_name == "m" and export.versions[0].request_id == "r1"


async def test_erase_deletes_user_and_every_version_only_for_that_user(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    gone, kept = f"gone-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex[:8]}"
    for user in (gone, kept):
        await profiles.append(tenant, user, ["x"], source="model")
        await profiles.append(tenant, user, ["y"], source="model")
    await profiles.erase(tenant, gone)
    assert await profiles.get_state(tenant, gone) is None
    async with transaction(profiles._sessionmaker) as session:
        users = await session.scalar(
            select(func.count()).select_from(EndUser).where(EndUser.external_id == gone)
        )
        orphans = await session.scalar(
            select(func.count())
            .select_from(ProfileVersion)
            .where(~ProfileVersion.end_user_id.in_(select(EndUser.id)))
        )
    assert users == 0 and orphans == 0
    kept_state = await profiles.get_state(tenant, kept)
    assert kept_state is not None and kept_state.version == 2


async def test_concurrent_changes_read_from_one_version_all_land(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"merge-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["likes jazz"], source="admin")
    read = await profiles.open(tenant, user)
    facts = [f"fact {i}" for i in range(30)]
    states = await asyncio.gather(
        *(profiles.apply_change(tenant, user, read, ProfileChange(add=(f,))) for f in facts)
    )
    assert sorted(s.version for s in states if s is not None) == list(range(2, 32))
    final = await profiles.get_state(tenant, user)
    assert final is not None and final.version == 31
    assert sorted(final.traits) == sorted(["likes jazz", *facts])


async def test_a_change_read_before_an_erase_writes_nothing_after_it(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"erased-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["has a secret"], source="model")
    read = await profiles.open(tenant, user)  # a turn starts ...
    assert read is not None
    await profiles.erase(tenant, user)  # ... the user is erased while it runs ...
    late = await profiles.apply_change(tenant, user, read, ProfileChange(add=("more",)))
    assert late is None  # ... and its write finds no user to write to
    assert await profiles.get_state(tenant, user) is None
    # The user may come back later as a new user, with nothing of the old profile.
    fresh = await profiles.open(tenant, user)
    assert fresh is not None
    assert (fresh.version, fresh.traits) == (0, []) and fresh.user_id != read.user_id


async def test_a_turn_received_before_an_erase_neither_recreates_nor_writes_after_it(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"fenced-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["has a secret"], source="model")
    arrived = utcnow()  # a request is received, and has not read the profile yet ...
    await profiles.erase(tenant, user)  # ... when the user is erased
    # Reading late, it neither sees nor recreates the user ...
    assert await profiles.open(tenant, user, arrived) is None
    assert await profiles.get_state(tenant, user) is None
    # ... and where a later request recreated the user, it does not write into that user.
    successor = await profiles.open(tenant, user)
    assert successor is not None
    change = ProfileChange(add=("said before the erase",))
    kept = await profiles.apply_change(tenant, user, successor, change, arrived_at=arrived)
    assert kept is None
    assert (await profiles.get_state(tenant, user)) == successor
    # A request received after the erase writes as usual.
    written = await profiles.apply_change(tenant, user, successor, change, arrived_at=utcnow())
    assert written is not None and written.traits == ["said before the erase"]


async def test_a_retried_request_id_is_applied_once(service: tuple[ProfileService, int]) -> None:
    profiles, tenant = service
    user = f"retry-{uuid.uuid4().hex[:8]}"
    read = await profiles.open(tenant, user)
    assert read is not None
    first = await profiles.apply_change(
        tenant, user, read, ProfileChange(add=("a",)), request_id="req-1"
    )
    assert first is not None and first.version == 1
    # The client was not told (a 503 whose outcome was unknown) and retries the same request,
    # from what it read before or after: nothing is applied twice.
    for start in (read, first):
        again = await profiles.apply_change(
            tenant, user, start, ProfileChange(add=("b",)), request_id="req-1"
        )
        assert again is not None and (again.version, again.traits) == (1, ["a"])
    other = await profiles.apply_change(
        tenant, user, first, ProfileChange(add=("b",)), request_id="req-2"
    )
    assert other is not None and (other.version, other.traits) == (2, ["a", "b"])


async def test_an_unchanged_profile_writes_no_version(service: tuple[ProfileService, int]) -> None:
    profiles, tenant = service
    user = f"same-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["a"], source="model")
    read = await profiles.open(tenant, user)
    state = await profiles.apply_change(tenant, user, read, ProfileChange(add=("A",)))
    assert state is not None and (state.version, state.traits) == (1, ["a"])
