"""One trait at a time over the admin API, merged with chat turns, each version naming its key.

On PostgreSQL + Redis and on SQLite + the in-process cache.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.auth import audit
from server.auth import repository as auth_repository
from server.cache import NoCache
from server.db import create_engine, create_sessionmaker, transaction
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.rlpa import ProfileChange
from server.settings import Settings
from tests.fixtures.app import auth
from tests.server.profiles.test_admin_api import new_user, url


async def _profile(client: httpx.AsyncClient, user: str) -> tuple[int, list[str]]:
    body = (await client.get(url(user, "/profile"))).json()
    return body["version"], body["traits"]


async def test_adding_a_trait_makes_a_new_admin_version_that_is_served(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user("add")
    await admin_client.put(url(user, "/profile"), json={"traits": ["likes tea"]})
    await admin_client.get(url(user, "/profile"))  # the cache holds version 1
    added = await admin_client.post(url(user, "/profile/traits"), json={"trait": "  vegan "})
    assert added.status_code == 200, added.text
    body = added.json()
    assert (body["version"], body["traits"], body["source"]) == (2, ["likes tea", "vegan"], "admin")
    assert await _profile(admin_client, user) == (2, ["likes tea", "vegan"])
    history = (await admin_client.get(url(user, "/profile/history"))).json()["data"]
    assert history[0]["added"] == ["vegan"] and history[0]["source"] == "admin"


async def test_adding_a_trait_already_there_in_another_case_makes_no_version(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user("dup")
    await admin_client.put(url(user, "/profile"), json={"traits": ["Likes Tea"]})
    again = await admin_client.post(url(user, "/profile/traits"), json={"trait": " likes TEA  "})
    assert again.status_code == 200
    assert (again.json()["version"], again.json()["traits"]) == (1, ["Likes Tea"])
    history = (await admin_client.get(url(user, "/profile/history"))).json()["data"]
    assert len(history) == 1


async def test_adding_a_trait_to_a_new_user_creates_the_user(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user("fresh")
    response = await admin_client.post(url(user, "/profile/traits"), json={"trait": "new here"})
    assert response.status_code == 200
    assert await _profile(admin_client, user) == (1, ["new here"])


async def test_removing_a_trait_keeps_the_rest_and_the_user(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user("rm")
    await admin_client.put(url(user, "/profile"), json={"traits": ["likes tea", "vegan"]})
    await admin_client.get(url(user, "/profile"))
    removed = await admin_client.delete(url(user, "/profile/traits"), params={"trait": "LIKES TEA"})
    assert removed.status_code == 200, removed.text
    assert (removed.json()["version"], removed.json()["traits"]) == (2, ["vegan"])
    assert await _profile(admin_client, user) == (2, ["vegan"])
    history = (await admin_client.get(url(user, "/profile/history"))).json()["data"]
    assert history[0]["removed"] == ["likes tea"]


async def test_removing_a_missing_trait_or_from_a_missing_user_is_404(
    admin_client: httpx.AsyncClient,
) -> None:
    user = new_user("missing")
    await admin_client.put(url(user, "/profile"), json={"traits": ["kept"]})
    no_trait = await admin_client.delete(url(user, "/profile/traits"), params={"trait": "absent"})
    assert no_trait.status_code == 404
    assert no_trait.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "trait",
        "code": "trait_not_found",
    }
    no_user = await admin_client.delete(
        url(new_user("nobody"), "/profile/traits"), params={"trait": "kept"}
    )
    assert no_user.status_code == 404 and no_user.json()["error"]["param"] == "user"
    assert await _profile(admin_client, user) == (1, ["kept"])


async def test_trait_edits_keep_the_profile_limits(admin_client: httpx.AsyncClient) -> None:
    user = new_user("limits")
    full = [f"trait {i}" for i in range(64)]
    await admin_client.put(url(user, "/profile"), json={"traits": full})
    for bad in ("x" * 201, "bell\x07", "line\nbreak", "   ", "</profile>", "one more"):
        response = await admin_client.post(url(user, "/profile/traits"), json={"trait": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "trait"
    # At the limit, a trait already there is still not an error: nothing changes.
    same = await admin_client.post(url(user, "/profile/traits"), json={"trait": "TRAIT 3"})
    assert same.status_code == 200
    assert await _profile(admin_client, user) == (1, full)
    missing_param = await admin_client.delete(url(user, "/profile/traits"))
    assert missing_param.status_code == 400
    assert await _profile(admin_client, user) == (1, full)


async def test_every_admin_version_names_the_key_that_made_it(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await admin_client.post("/admin/keys", json={"name": "ops", "scopes": ["admin"]})
    ops_id, ops = created.json()["id"], auth(created.json()["key"])
    bootstrap_id = next(
        k["id"]
        for k in (await admin_client.get("/admin/keys")).json()["data"]
        if k["name"].startswith("bootstrap")
    )
    user = new_user("actor")
    await admin_client.put(url(user, "/profile"), json={"traits": ["a"]})
    await admin_client.post(url(user, "/profile/traits"), json={"trait": "b"}, headers=ops)
    await admin_client.delete(url(user, "/profile/traits"), params={"trait": "a"}, headers=ops)
    await admin_client.post(url(user, "/profile/rollback"), json={"version": 1}, headers=ops)
    history = (await admin_client.get(url(user, "/profile/history"))).json()["data"]
    assert [(v["version"], v["actor_key_id"]) for v in history] == [
        (4, ops_id),
        (3, ops_id),
        (2, ops_id),
        (1, bootstrap_id),
    ]
    # Revoking the key leaves the history it made as it was.
    assert (await admin_client.delete(f"/admin/keys/{ops_id}")).status_code == 204
    export = (await admin_client.get(url(user, "/export"))).json()
    assert [v["actor_key_id"] for v in export["versions"]] == [bootstrap_id] + [ops_id] * 3


@pytest.fixture(params=["postgres", "sqlite"])
async def service(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[ProfileService, int]]:
    engine = create_engine(make_settings(db=request.param, redis=False))
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        tenant = await auth_repository.ensure_tenant(session, "trait-edit-tests")
    yield ProfileService(sessionmaker, NoCache(), Pseudonyms(b"test")), tenant.id
    await engine.dispose()


async def test_a_trait_edit_merges_with_a_chat_turn_that_read_the_profile_before_it(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"merge-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["likes jazz", "lives in Oslo"], source="model")
    turn_read = await profiles.open(tenant, user)  # a turn starts and reads version 1 ...
    await profiles.edit_trait(tenant, user, "lives in Oslo", remove=True, actor=audit.Actor(7))
    # ... and stores what it learned after the admin's edit: both survive.
    stored = await profiles.apply_change(
        tenant, user, turn_read, ProfileChange(add=("plays chess",)), model_name="m"
    )
    assert stored is not None and stored.traits == ["likes jazz", "plays chess"]
    history = await profiles.history(tenant, user)
    assert [(v.version, v.source, v.actor_key_id) for v in history.data] == [
        (3, "model", None),
        (2, "admin", 7),
        (1, "model", None),
    ]


async def test_concurrent_trait_edits_and_turns_lose_nothing(
    service: tuple[ProfileService, int],
) -> None:
    profiles, tenant = service
    user = f"race-{uuid.uuid4().hex[:8]}"
    await profiles.append(tenant, user, ["seed"], source="model")
    read = await profiles.open(tenant, user)
    admin = [f"admin fact {i}" for i in range(6)]
    chat = [f"chat fact {i}" for i in range(6)]
    await asyncio.gather(
        *(profiles.edit_trait(tenant, user, t, remove=False, actor=audit.Actor()) for t in admin),
        *(profiles.apply_change(tenant, user, read, ProfileChange(add=(t,))) for t in chat),
    )
    state = await profiles.get_state(tenant, user)
    assert state is not None and state.version == 13
    assert sorted(state.traits) == sorted(["seed", *admin, *chat])
