"""API keys: hashed storage, scopes, tenants, user binding, revocation, the auth-off default."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from server.app import create_app
from server.auth import repository, service
from server.auth import schemas as s
from server.auth.models import ApiKey
from server.db import create_engine, create_sessionmaker, transaction
from server.settings import Settings
from tests.fixtures.app import auth, running


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def client(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = make_settings(db=request.param, redis=request.param == "postgres")
    async with running(create_app(settings)) as c:
        yield c, settings


async def _key_in_tenant(
    settings: Settings, tenant: str, scopes: list[str], user: str | None = None
) -> str:
    engine = create_engine(settings)
    async with transaction(create_sessionmaker(engine)) as session:
        t = await repository.ensure_tenant(session, tenant)
        created = await service.create_key(session, t, s.KeyCreate(scopes=scopes, user=user))  # type: ignore[arg-type]
    await engine.dispose()
    return created.key


async def test_created_key_is_shown_once_and_stored_hashed(
    client: tuple[httpx.AsyncClient, Settings],
) -> None:
    c, settings = client
    created = await c.post("/admin/keys", json={"name": "ci", "scopes": ["chat"]}, headers=auth())
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith(created.json()["prefix"]) and len(created.json()["prefix"]) < 16
    listed = (await c.get("/admin/keys", headers=auth())).json()["data"]
    assert all("key" not in row for row in listed)
    engine = create_engine(settings)
    async with transaction(create_sessionmaker(engine)) as session:
        stored = (await session.scalars(select(ApiKey))).all()
    await engine.dispose()
    assert all(secret not in (k.secret_hash, k.prefix, k.name) for k in stored)
    assert any(k.secret_hash == service.hash_secret(secret) for k in stored)


async def test_missing_wrong_and_revoked_keys_are_401(
    client: tuple[httpx.AsyncClient, Settings],
) -> None:
    c, _ = client
    assert (await c.get("/admin/users")).status_code == 401
    wrong = await c.get("/admin/users", headers=auth("rlpa-nope"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    created = (await c.post("/admin/keys", json={"scopes": ["admin"]}, headers=auth())).json()
    assert (await c.get("/admin/users", headers=auth(created["key"]))).status_code == 200
    assert (await c.delete(f"/admin/keys/{created['id']}", headers=auth())).status_code == 204
    assert (await c.get("/admin/users", headers=auth(created["key"]))).status_code == 401


async def test_chat_scope_key_gets_403_on_admin_routes(
    client: tuple[httpx.AsyncClient, Settings],
) -> None:
    c, _ = client
    chat_key = (await c.post("/admin/keys", json={"scopes": ["chat"]}, headers=auth())).json()[
        "key"
    ]
    response = await c.get("/admin/users", headers=auth(chat_key))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


async def test_a_tenant_never_sees_another_tenants_users_on_any_route(
    client: tuple[httpx.AsyncClient, Settings],
) -> None:
    c, settings = client
    key_b = await _key_in_tenant(settings, f"tenant-b-{uuid.uuid4().hex[:6]}", ["admin"])
    user = f"secret-{uuid.uuid4().hex[:8]}"
    path = f"/admin/users/{quote(user, safe='')}"
    await c.put(f"{path}/profile", json={"traits": ["a"]}, headers=auth())
    await c.put(f"{path}/profile", json={"traits": ["b"]}, headers=auth())
    b = auth(key_b)
    assert user not in str((await c.get("/admin/users", params={"q": user}, headers=b)).json())
    for method, tail, body in (
        ("GET", "/profile", None),
        ("GET", "/profile/history", None),
        ("GET", "/export", None),
        ("POST", "/profile/rollback", {"version": 1}),
    ):
        response = await c.request(method, path + tail, json=body, headers=b)
        assert response.status_code == 404, (method, tail)
    assert (await c.delete(path, headers=b)).status_code == 404
    # Writes from tenant B create B's own user of that name and never touch A's.
    await c.put(f"{path}/profile", json={"traits": ["from b"]}, headers=b)
    await c.patch(path, json={"personalization": False}, headers=b)
    mine = (await c.get(f"{path}/profile", headers=auth())).json()
    assert (mine["version"], mine["traits"]) == (2, ["b"])
    listed = (await c.get("/admin/users", params={"q": user}, headers=auth())).json()["data"]
    assert listed[0]["personalization"] is True
    keys_b = (await c.get("/admin/keys", headers=b)).json()["data"]
    assert all(k["tenant"] != "default" for k in keys_b)
    first_key_a = (await c.get("/admin/keys", headers=auth())).json()["data"][0]["id"]
    assert (await c.delete(f"/admin/keys/{first_key_a}", headers=b)).status_code == 404


async def test_a_user_bound_admin_key_sees_only_its_user(
    client: tuple[httpx.AsyncClient, Settings],
) -> None:
    c, settings = client
    me, other = f"me-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    for user in (me, other):
        await c.put(f"/admin/users/{user}/profile", json={"traits": ["t"]}, headers=auth())
    bound = auth(await _key_in_tenant(settings, "default", ["admin"], user=me))
    assert (await c.get(f"/admin/users/{me}/profile", headers=bound)).status_code == 200
    assert (await c.get(f"/admin/users/{other}/profile", headers=bound)).status_code == 404
    listed = (await c.get("/admin/users", headers=bound)).json()["data"]
    assert [row["user"] for row in listed] == [me]


async def test_auth_is_off_on_loopback_without_any_key(tmp_path: object) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db")  # type: ignore[call-arg]
    async with running(create_app(settings)) as c:
        assert (await c.get("/admin/users")).status_code == 200
        # OpenAI clients always send a key: with authentication off, any key is anonymous.
        assert (
            await c.get("/admin/users", headers=auth("unused-when-auth-is-off"))
        ).status_code == 200


async def test_refuses_to_start_on_a_public_interface_without_a_key(tmp_path: object) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, host="0.0.0.0", database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db"
    )
    with pytest.raises(RuntimeError, match="without an API key"):
        async with running(create_app(settings)):
            pass


def test_placeholder_admin_key_is_refused_on_a_public_interface() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(_env_file=None, host="0.0.0.0", admin_api_key="changeme")  # type: ignore[call-arg]


def test_cli_creates_lists_and_revokes_keys(tmp_path: object) -> None:
    env = {**os.environ, "RLPA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "server.cli", *a],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    run("db", "upgrade")
    created = run("keys", "create", "--tenant", "acme", "--scopes", "chat,admin", "--user", "bob")
    assert '"key": "rlpa-' in created.stdout
    listed = run("keys", "list", "--tenant", "acme").stdout
    assert '"prefix"' in listed and '"key"' not in listed and '"user": "bob"' in listed
    revoked = run("keys", "revoke", "1")
    assert "revoked" in revoked.stdout
    assert '"revoked_at": null' not in run("keys", "list").stdout

    # Both went to the audit log, from the CLI, without naming the bound user.
    with sqlite3.connect(f"{tmp_path}/cli.db") as db:
        events = db.execute("SELECT action, target, detail FROM audit_event ORDER BY id").fetchall()
    assert [(action, target) for action, target, _ in events] == [
        ("key.create", "1"),
        ("key.revoke", "1"),
    ]
    assert all('"cli"' in detail and "bob" not in detail for _, _, detail in events)

    # A profile key needs a user: a one-line error and a usage exit code, no traceback.
    unbound = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "create", "--scopes", "profile"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert unbound.returncode == 2 and "must be bound to a user" in unbound.stderr
    assert "Traceback" not in unbound.stderr
