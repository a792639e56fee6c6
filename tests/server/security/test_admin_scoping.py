"""Every admin route confines a key to its tenant, its scopes and its bound user.

The routes are read from the app itself: a new admin route fails these tests until it is added
to CALLS with what a foreign tenant, a chat key and a key bound to another user must get.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.server.security.helpers import key_in_tenant, new_user, user_path

SECRET_TRAIT = "keeps a diary in Basque"


@dataclass(frozen=True)
class AdminCall:
    method: str
    path: str  # the route's path_format
    foreign: int  # what another tenant's admin key gets, aimed at this tenant's user or key
    bound: int  # what an admin key bound to another user of the same tenant gets
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)

    def url(self, user: str, key_id: int) -> str:
        return self.path.format(user=quote(user, safe=""), key_id=key_id)


# A foreign tenant's reads and deletes come before its writes, which create its own user of the
# same name: after them a 404 would no longer show that the victim is out of reach.
CALLS = (
    AdminCall("GET", "/admin/users", foreign=200, bound=200),
    AdminCall("GET", "/admin/users/{user}/profile", foreign=404, bound=404),
    AdminCall("GET", "/admin/users/{user}/profile/history", foreign=404, bound=404),
    AdminCall("GET", "/admin/users/{user}/export", foreign=404, bound=404),
    AdminCall(
        "POST", "/admin/users/{user}/profile/rollback", foreign=404, bound=404, body={"version": 1}
    ),
    AdminCall("DELETE", "/admin/users/{user}", foreign=404, bound=404),
    AdminCall(
        "DELETE",
        "/admin/users/{user}/profile/traits",
        foreign=404,
        bound=404,
        params={"trait": "first"},
    ),
    AdminCall("GET", "/admin/audit", foreign=200, bound=403),
    AdminCall("GET", "/admin/keys", foreign=200, bound=403),
    AdminCall("DELETE", "/admin/keys/{key_id}", foreign=404, bound=403),
    AdminCall("PATCH", "/admin/keys/{key_id}", foreign=404, bound=403, body={"rpm_limit": 1}),
    AdminCall("GET", "/admin/usage", foreign=200, bound=403),
    AdminCall(
        "PUT", "/admin/users/{user}/profile", foreign=200, bound=404, body={"traits": ["caller's"]}
    ),
    # A trait already there: B's user stays at version 1.
    AdminCall(
        "POST",
        "/admin/users/{user}/profile/traits",
        foreign=200,
        bound=404,
        body={"trait": "caller's"},
    ),
    AdminCall(
        "PATCH", "/admin/users/{user}", foreign=200, bound=404, body={"personalization": False}
    ),
    AdminCall("POST", "/admin/keys", foreign=201, bound=403, body={"scopes": ["chat"]}),
)


def admin_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route under /admin, however deeply its router was included."""
    # FastAPI 0.165 keeps included routers nested in app.routes and flattens them with
    # iter_route_contexts (what its OpenAPI generator uses); older versions list routes flat.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = flatten(app.routes) if flatten else app.routes
    return {
        (method, route.path_format)
        for route in routes
        if str(getattr(route, "path_format", "")).startswith("/admin")
        and route.path_format not in STATIC_PAGES
        for method in (getattr(route, "methods", None) or {"ANY"})
    }


# The admin page's shell: the same static HTML for everyone, no data in it (it reads everything
# through the routes above, with the key the person signs in with).
STATIC_PAGES = {"/admin/ui"}


@dataclass
class Tenant:
    name: str
    admin_key: str
    key_id: int


@dataclass
class Setup:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    async def tenant(self, tag: str) -> Tenant:
        name = f"{tag}-{uuid.uuid4().hex[:8]}"
        key_id, secret = await key_in_tenant(self.settings, name, ["admin"])
        return Tenant(name, secret, key_id)

    async def call(self, call: AdminCall, key: str, user: str, key_id: int) -> httpx.Response:
        return await self.client.request(
            call.method,
            call.url(user, key_id),
            json=call.body,
            params=call.params,
            headers=auth(key),
        )

    async def snapshot(self, tenant: Tenant, user: str) -> dict[str, Any]:
        """Everything the tenant's admin can see of `user` and of its keys."""
        export = await self.client.get(user_path(user, "/export"), headers=auth(tenant.admin_key))
        assert export.status_code == 200, export.text
        body = export.json()
        body.pop("exported_at")
        keys = await self.client.get("/admin/keys", headers=auth(tenant.admin_key))
        # When a key was last used changes with every request it makes (these reads included).
        rows = [
            {k: v for k, v in row.items() if k != "last_used_at"} for row in keys.json()["data"]
        ]
        return {"export": body, "keys": rows}

    async def victim(self, tenant: Tenant) -> str:
        """A user of `tenant` with two versions, the second holding SECRET_TRAIT."""
        user = new_user("victim")
        for traits in (["first"], ["first", SECRET_TRAIT]):
            put = await self.client.put(
                user_path(user, "/profile"), json={"traits": traits}, headers=auth(tenant.admin_key)
            )
            assert put.status_code == 200, put.text
        return user


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def setup(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Setup]:
    settings = make_settings(
        db=request.param,
        redis=request.param == "postgres",
        backend="openai",
        upstream_urls=["http://127.0.0.1:9/v1"],  # never called: nobody chats here
    )
    app = create_app(settings)
    async with running(app) as client:
        yield Setup(app, client, settings)


def test_every_admin_route_has_a_call(setup: Setup) -> None:
    assert admin_routes(setup.app) == {(call.method, call.path) for call in CALLS}


async def test_another_tenants_admin_key_never_sees_or_changes_a_tenants_users_or_keys(
    setup: Setup,
) -> None:
    a, b = await setup.tenant("tenant-a"), await setup.tenant("tenant-b")
    victim = await setup.victim(a)
    bound_id, _ = await key_in_tenant(setup.settings, a.name, ["chat"], user=victim)
    before = await setup.snapshot(a, victim)
    routes = admin_routes(setup.app)
    for call in CALLS:
        assert (call.method, call.path) in routes
        # A's admin key and the key bound to the victim, where the route names a key.
        for key_id in (a.key_id, bound_id) if "{key_id}" in call.path else (a.key_id,):
            response = await setup.call(call, b.admin_key, victim, key_id)
            assert response.status_code == call.foreign, (call, response.text)
            assert SECRET_TRAIT not in response.text
            body = response.json() if response.content else {}
            if call.path == "/admin/users":
                assert victim not in response.text
            elif (call.method, call.path) == ("GET", "/admin/keys"):
                assert {row["tenant"] for row in body["data"]} == {b.name}
            elif (call.method, call.path) == ("POST", "/admin/keys"):
                assert body["tenant"] == b.name
            elif call.path == "/admin/usage":
                assert body["total"]["requests"] == 0  # B's own tenant, where no one chatted
            elif call.method in ("PUT", "PATCH") and "{user}" in call.path:
                assert body["user"] == victim  # B's own user of the same name
            assert await setup.snapshot(a, victim) == before, call
    # B's writes went to B's own user: a version 1, never A's version 3.
    mine = await setup.client.get(user_path(victim, "/profile"), headers=auth(b.admin_key))
    assert (mine.json()["version"], mine.json()["traits"]) == (1, ["caller's"])


async def test_chat_scope_keys_are_refused_on_every_admin_route(setup: Setup) -> None:
    a = await setup.tenant("tenant-chat")
    victim = await setup.victim(a)
    _, chat_key = await key_in_tenant(setup.settings, a.name, ["chat"])
    _, bound_chat_key = await key_in_tenant(setup.settings, a.name, ["chat"], user=victim)
    before = await setup.snapshot(a, victim)
    for call in CALLS:
        for key in (chat_key, bound_chat_key):
            response = await setup.call(call, key, victim, a.key_id)
            assert response.status_code == 403, (call, response.text)
            assert response.json()["error"]["type"] == "permission_error"
            assert SECRET_TRAIT not in response.text
    assert await setup.snapshot(a, victim) == before


async def test_a_bound_admin_key_is_confined_to_its_user_on_every_admin_route(
    setup: Setup,
) -> None:
    a = await setup.tenant("tenant-bound")
    me, other = await setup.victim(a), await setup.victim(a)
    _, bound_key = await key_in_tenant(setup.settings, a.name, ["admin"], user=me)
    before = await setup.snapshot(a, other)
    for call in CALLS:
        response = await setup.call(call, bound_key, other, a.key_id)
        assert response.status_code == call.bound, (call, response.text)
        if call.path == "/admin/users":
            assert [row["user"] for row in response.json()["data"]] == [me]
        else:
            assert SECRET_TRAIT not in response.text
        assert await setup.snapshot(a, other) == before, call
    # Its own user it can read and manage.
    own = await setup.client.get(user_path(me, "/profile"), headers=auth(bound_key))
    assert own.status_code == 200 and SECRET_TRAIT in own.json()["traits"]
    put = await setup.client.put(
        user_path(me, "/profile"), json={"traits": ["edited"]}, headers=auth(bound_key)
    )
    assert put.status_code == 200 and put.json()["version"] == 3
