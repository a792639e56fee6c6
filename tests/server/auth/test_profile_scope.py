"""The `profile` scope: an end user sees, exports and erases what is kept about them under
/v1/me, with a key bound to them, and reaches nothing else.

On PostgreSQL + Redis and on SQLite + the in-process cache.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.app import create_app
from server.auth import repository, service
from server.auth.models import ApiKey
from server.db import create_engine, create_sessionmaker, transaction
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.server.security.helpers import key_in_tenant, new_user, user_path


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
        client.headers.update(auth())
        yield client, settings


async def _user_with_profile(client: httpx.AsyncClient, *traits: str) -> str:
    user = new_user("me")
    for n in range(1, len(traits) + 1):
        put = await client.put(user_path(user, "/profile"), json={"traits": list(traits[:n])})
        assert put.status_code == 200
    return user


async def _profile_key(client: httpx.AsyncClient, user: str) -> tuple[int, dict[str, str]]:
    created = await client.post("/admin/keys", json={"scopes": ["profile"], "user": user})
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["profile"] and created.json()["user"] == user
    return created.json()["id"], auth(created.json()["key"])


async def test_a_profile_key_must_be_bound_to_a_user(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _ = gateway
    before = _keys(await client.get("/admin/keys"))
    for scopes in (["profile"], ["profile", "chat"]):
        response = await client.post("/admin/keys", json={"scopes": scopes})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "user"
    assert _keys(await client.get("/admin/keys")) == before


def _keys(response: httpx.Response) -> list[dict[str, object]]:
    data: list[dict[str, object]] = response.json()["data"]
    return data


async def test_the_bound_user_reads_and_exports_its_own_profile(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _ = gateway
    user = await _user_with_profile(client, "likes tea", "plays chess")
    _, me = await _profile_key(client, user)
    profile = await client.get("/v1/me/profile", headers=me)
    assert profile.status_code == 200, profile.text
    assert profile.json()["user"] == user
    assert profile.json()["traits"] == ["likes tea", "plays chess"]
    export = await client.get("/v1/me/export", headers=me)
    assert export.status_code == 200
    assert [v["traits"] for v in export.json()["versions"]] == [
        ["likes tea"],
        ["likes tea", "plays chess"],
    ]


async def test_a_bound_user_with_nothing_stored_gets_404(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _ = gateway
    _, me = await _profile_key(client, new_user("empty"))
    for path in ("/v1/me/profile", "/v1/me/export"):
        response = await client.get(path, headers=me)
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert (await client.delete("/v1/me", headers=me)).status_code == 404


async def test_a_profile_key_reaches_no_other_user_and_no_admin_or_chat_route(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, _ = gateway
    user = await _user_with_profile(client, "mine")
    other = await _user_with_profile(client, "someone else's secret")
    _, me = await _profile_key(client, user)
    for method, path in (
        ("GET", "/admin/users"),
        ("GET", user_path(other, "/profile")),
        ("GET", user_path(user, "/profile")),  # not even its own user through /admin
        ("GET", user_path(other, "/export")),
        ("DELETE", user_path(other)),
        ("GET", "/admin/keys"),
        ("GET", "/admin/audit"),
        ("GET", "/v1/models"),
    ):
        response = await client.request(method, path, headers=me)
        assert response.status_code == 403, (method, path, response.text)
        assert "secret" not in response.text
    chat = await client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": other},
        headers=me,
    )
    assert chat.status_code == 403
    # /v1/me takes no user from the request: a query or body naming another changes nothing.
    mine = await client.get("/v1/me/profile", params={"user": other}, headers=me)
    assert mine.json()["traits"] == ["mine"]
    assert (await client.get(user_path(other, "/profile"))).json()["traits"] == [
        "someone else's secret"
    ]


async def test_unbound_and_chat_keys_get_403_on_me(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = gateway
    user = await _user_with_profile(client, "t")
    _, bound_chat = await key_in_tenant(settings, "default", ["chat"], user=user)
    _, bound_admin = await key_in_tenant(settings, "default", ["admin", "chat"], user=user)
    unbound_profile = await _unbound_profile_key(settings)
    for key in (None, bound_chat, bound_admin, unbound_profile):  # None: the bootstrap admin
        headers = auth(key) if key else {}
        for method, path in (
            ("GET", "/v1/me/profile"),
            ("GET", "/v1/me/export"),
            ("DELETE", "/v1/me"),
        ):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 403, (key, path)
            assert response.json()["error"]["type"] == "permission_error"
    assert (await client.get(user_path(user, "/profile"))).status_code == 200


async def _unbound_profile_key(settings: Settings) -> str:
    """A `profile` key with no user, as the API refuses to make it (written straight to the
    table, as an older version or a hand edit might have)."""
    secret = service.new_secret()
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            tenant = await repository.ensure_tenant(session, "default")
            key = ApiKey(
                tenant_id=tenant.id,
                secret_hash=service.hash_secret(secret),
                prefix=secret[:12],
                scopes="profile",
            )
            await repository.add_key(session, key)
    finally:
        await engine.dispose()
    return secret


async def test_erasing_through_me_is_the_admin_erase(
    gateway: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = gateway
    user = await _user_with_profile(client, f"told {uuid.uuid4().hex[:6]}")
    await client.get(user_path(user, "/profile"))  # the cache holds the profile
    key_id, me = await _profile_key(client, user)
    _, chat = await key_in_tenant(settings, "default", ["chat"], user=user)

    assert (await client.delete("/v1/me", headers=me)).status_code == 204

    assert (await client.get(user_path(user, "/profile"))).status_code == 404
    assert (await client.get(user_path(user, "/export"))).status_code == 404
    # Every key bound to the user stops working, the one that erased it included.
    assert (await client.get("/v1/me/profile", headers=me)).status_code == 401
    assert (await client.get("/v1/models", headers=auth(chat))).status_code == 401
    keys = {k["id"]: k for k in _keys(await client.get("/admin/keys"))}
    assert keys[key_id]["revoked_at"] is not None and keys[key_id]["user"] is None
    erase = (await client.get("/admin/audit")).json()["data"][0]
    assert (erase["action"], erase["actor_key_id"]) == ("user.erase", key_id)
    assert erase["target"].startswith("hmac:") and user not in erase["target"]
    assert erase["detail"]["keys_revoked"] == 2
