"""The audit log: every admin change, by which key, in the change's own transaction, and
nothing of an erased user or of any profile's text.

On PostgreSQL + Redis and on SQLite + the in-process cache; each test in a tenant of its own.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, pseudonyms_of, running
from tests.server.security.helpers import key_in_tenant, new_user, user_path


@dataclass
class Tenant:
    client: httpx.AsyncClient
    settings: Settings
    name: str
    key_id: int
    headers: dict[str, str]

    async def events(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/admin/audit", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def gateway(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = make_settings(
        db=request.param,
        redis=request.param == "postgres",
        backend="openai",
        upstream_urls=["http://127.0.0.1:9/v1"],  # never called: nobody chats here
    )
    async with running(create_app(settings)) as client:
        yield client, settings


@pytest.fixture
async def tenant(gateway: tuple[httpx.AsyncClient, Settings]) -> Tenant:
    client, settings = gateway
    name = f"audit-{uuid.uuid4().hex[:8]}"
    key_id, secret = await key_in_tenant(settings, name, ["admin"])
    return Tenant(client, settings, name, key_id, auth(secret))


async def test_admin_changes_are_logged_newest_first_with_the_key_that_made_them(
    tenant: Tenant,
) -> None:
    c, h, user = tenant.client, tenant.headers, new_user("audited")
    assert (await c.put(user_path(user, "/profile"), json={"traits": ["a"]}, headers=h)).is_success
    await c.post(user_path(user, "/profile/traits"), json={"trait": "b"}, headers=h)
    await c.delete(user_path(user, "/profile/traits"), params={"trait": "a"}, headers=h)
    await c.post(user_path(user, "/profile/rollback"), json={"version": 1}, headers=h)
    await c.patch(user_path(user), json={"personalization": False}, headers=h)
    await c.patch(user_path(user), json={"personalization": True}, headers=h)
    created = (await c.post("/admin/keys", json={"scopes": ["chat"]}, headers=h)).json()
    assert (await c.delete(f"/admin/keys/{created['id']}", headers=h)).status_code == 204

    events = await tenant.events()
    assert [(e["action"], e["target"]) for e in events] == [
        ("key.revoke", str(created["id"])),
        ("key.create", str(created["id"])),
        ("user.opt_in", user),
        ("user.opt_out", user),
        ("profile.rollback", user),
        ("profile.remove_trait", user),
        ("profile.add_trait", user),
        ("profile.replace", user),
    ]
    assert {e["actor_key_id"] for e in events} == {tenant.key_id}
    assert [e["detail"].get("version") for e in events[4:]] == [4, 3, 2, 1]
    assert events[4]["detail"]["rolled_back_to"] == 1
    assert events[1]["detail"]["scopes"] == ["chat"]
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert all(e["at"].endswith(("Z", "+00:00")) for e in events)


async def test_an_erasure_leaves_only_a_keyed_pseudonym_of_the_user_and_no_profile_text(
    tenant: Tenant,
) -> None:
    c, h, user = tenant.client, tenant.headers, new_user("forgotten")
    hashed = (await pseudonyms_of(tenant.settings)).label
    secret = f"secret trait {uuid.uuid4().hex[:6]}"
    await c.put(user_path(user, "/profile"), json={"traits": [secret]}, headers=h)
    await c.post(user_path(user, "/profile/traits"), json={"trait": f"{secret} 2"}, headers=h)
    await key_in_tenant(tenant.settings, tenant.name, ["chat"], user=user)
    created = await c.post("/admin/keys", json={"scopes": ["chat"], "user": user}, headers=h)
    assert created.status_code == 201
    before = await tenant.events()
    assert user in str(before) and secret not in str(before)

    assert (await c.delete(user_path(user), headers=h)).status_code == 204

    events = await tenant.events()
    assert user not in str(events) and secret not in str(events)
    erase = events[0]
    assert (erase["action"], erase["target"], erase["actor_key_id"]) == (
        "user.erase",
        hashed(user),
        tenant.key_id,
    )
    # Keyed: hashing a guessed id without the server's key does not find the user's events.
    unkeyed = hashlib.blake2b(user.encode(), digest_size=16).hexdigest()
    assert unkeyed not in str(events) and hashlib.sha256(user.encode()).hexdigest()[:32] not in (
        str(events)
    )
    assert erase["detail"]["keys_revoked"] == 2
    # The earlier events are still there, now naming the user only by the same hash.
    assert [(e["action"], e["target"]) for e in events[1:]] == [
        ("key.create", str(created.json()["id"])),
        ("profile.add_trait", hashed(user)),
        ("profile.replace", hashed(user)),
    ]


async def test_a_change_that_fails_logs_nothing(tenant: Tenant) -> None:
    c, h, user = tenant.client, tenant.headers, new_user("failing")
    await c.put(user_path(user, "/profile"), json={"traits": ["kept"]}, headers=h)
    count = len(await tenant.events())
    failures = (
        await c.put(user_path(user, "/profile"), json={"traits": ["x" * 201]}, headers=h),
        await c.post(user_path(user, "/profile/rollback"), json={"version": 9}, headers=h),
        await c.delete(user_path(user, "/profile/traits"), params={"trait": "gone"}, headers=h),
        await c.post(user_path(user, "/profile/traits"), json={"trait": "\x00"}, headers=h),
        await c.delete(user_path(new_user("nobody")), headers=h),
        await c.post("/admin/keys", json={"scopes": ["profile"]}, headers=h),
        await c.delete("/admin/keys/2147483647", headers=h),
    )
    assert [r.status_code for r in failures] == [400, 404, 404, 400, 404, 400, 404]
    # An edit that changes nothing is no change either.
    await c.post(user_path(user, "/profile/traits"), json={"trait": "KEPT"}, headers=h)
    assert len(await tenant.events()) == count


async def test_the_log_pages_newest_first_with_an_opaque_cursor(tenant: Tenant) -> None:
    c, h = tenant.client, tenant.headers
    for i in range(7):
        await c.put(user_path(f"pager-{i}", "/profile"), json={"traits": ["t"]}, headers=h)
    whole = await tenant.events(limit=1000)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await c.get("/admin/audit", params=params, headers=h)).json()
        assert len(page["data"]) <= 3
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole
    assert [e["target"] for e in whole] == [f"pager-{i}" for i in reversed(range(7))]
    for bad in ("not base64!", "bm90IGFuIGlk", "LTE=", "MA=="):  # "not an id", "-1", "0"
        response = await c.get("/admin/audit", params={"cursor": bad}, headers=h)
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "cursor"


async def test_a_tenant_reads_only_its_own_log(
    tenant: Tenant, gateway: tuple[httpx.AsyncClient, Settings]
) -> None:
    _, settings = gateway
    other_id, other = await key_in_tenant(settings, f"other-{uuid.uuid4().hex[:8]}", ["admin"])
    mine, theirs = new_user("mine"), new_user("theirs")
    c = tenant.client
    await c.put(user_path(mine, "/profile"), json={"traits": ["t"]}, headers=tenant.headers)
    await c.put(user_path(theirs, "/profile"), json={"traits": ["t"]}, headers=auth(other))
    assert [e["target"] for e in await tenant.events()] == [mine]
    other_log = (await c.get("/admin/audit", headers=auth(other))).json()["data"]
    assert [(e["target"], e["actor_key_id"]) for e in other_log] == [(theirs, other_id)]


async def test_keys_without_admin_or_bound_to_a_user_cannot_read_the_log(
    tenant: Tenant,
) -> None:
    user = new_user("bound")
    await tenant.client.put(
        user_path(user, "/profile"), json={"traits": ["t"]}, headers=tenant.headers
    )
    for scopes, bound in ((["admin"], user), (["chat"], None), (["profile"], user)):
        _, key = await key_in_tenant(tenant.settings, tenant.name, scopes, user=bound)
        response = await tenant.client.get("/admin/audit", headers=auth(key))
        assert response.status_code == 403, scopes
        assert response.json()["error"]["type"] == "permission_error"
        assert user not in response.text


async def test_with_authentication_off_events_name_no_key(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/off.db")  # type: ignore[call-arg]
    async with running(create_app(settings)) as c:
        await c.put(user_path("u", "/profile"), json={"traits": ["t"]})
        events = (await c.get("/admin/audit")).json()["data"]
        history = (await c.get(user_path("u", "/profile/history"))).json()["data"]
    assert [(e["action"], e["actor_key_id"], e["detail"]) for e in events] == [
        ("profile.replace", None, {"via": "api", "version": 1})
    ]
    assert history[0]["actor_key_id"] is None
