"""Authentication that cannot be switched off by revoking keys, a bounded key cache, and a
limit on failed authentications per client address."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.errors import AuthenticationError
from server.settings import Settings
from tests.fixtures.app import auth, running

BOOTSTRAP = "rlpa-bootstrap-key-for-revocation-test"


def _sqlite(tmp_path: Path, **values: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/auth.db", **values
    )


async def test_revoking_the_configured_admin_key_never_turns_authentication_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _sqlite(tmp_path, admin_api_key=SecretStr(BOOTSTRAP))
    async with running(create_app(settings)) as c:
        keys = (await c.get("/admin/keys", headers=auth(BOOTSTRAP))).json()["data"]
        (bootstrap,) = [k for k in keys if k["prefix"] == BOOTSTRAP[:12]]
        assert (
            await c.delete(f"/admin/keys/{bootstrap['id']}", headers=auth(BOOTSTRAP))
        ).status_code == 204
        assert (await c.get("/admin/users", headers=auth(BOOTSTRAP))).status_code == 401

    caplog.set_level(logging.WARNING, logger="server.auth.service")
    async with running(create_app(settings)) as c:  # the next start, same key still configured
        assert (await c.get("/admin/users")).status_code == 401
        assert (await c.get("/admin/users", headers=auth(BOOTSTRAP))).status_code == 401
        assert (await c.post("/admin/keys", json={"scopes": ["admin"]})).status_code == 401
    assert any(
        "revoked" in r.getMessage() and "RLPA_ADMIN_API_KEY" in r.getMessage()
        for r in caplog.records
    )
    assert BOOTSTRAP not in caplog.text


async def test_revoking_every_key_keeps_authentication_on_after_a_restart(tmp_path: Path) -> None:
    async with running(create_app(_sqlite(tmp_path))) as c:  # auth off: no key yet
        created = (await c.post("/admin/keys", json={"scopes": ["admin", "chat"]})).json()
        # The first key turns authentication on at once, without a restart.
        assert (await c.get("/admin/users")).status_code == 401
        mine = auth(created["key"])
        assert (await c.delete(f"/admin/keys/{created['id']}", headers=mine)).status_code == 204
    async with running(create_app(_sqlite(tmp_path))) as c:
        assert (await c.get("/admin/users")).status_code == 401
        assert (await c.post("/admin/keys", json={"scopes": ["admin"]})).status_code == 401


async def test_the_first_key_turns_authentication_on_for_every_replica_at_once(
    tmp_path: Path,
) -> None:
    """Two replicas on one database, started with no key (auth off on loopback): a key created
    through one of them, or by `rlpa keys create` through neither, closes both."""
    async with (
        running(create_app(_sqlite(tmp_path))) as a,
        running(create_app(_sqlite(tmp_path))) as b,
    ):
        assert (await a.get("/admin/users")).status_code == 200
        assert (await b.get("/admin/keys")).status_code == 200
        created = await a.post("/admin/keys", json={"scopes": ["admin"]})
        assert created.status_code == 201
        for replica in (a, b):
            assert (await replica.get("/admin/keys")).status_code == 401
            assert (await replica.get("/admin/users")).status_code == 401
            listed = await replica.get("/admin/users", headers=auth(created.json()["key"]))
            assert listed.status_code == 200


async def test_wrong_keys_are_limited_per_address_and_do_not_grow_memory(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(db="postgres", redis=True, auth_failures_per_minute=30))
    async with running(app) as c:
        assert (await c.get("/admin/users", headers=auth())).status_code == 200
        statuses = [
            (await c.get("/admin/users", headers=auth(f"rlpa-{secrets.token_hex(8)}"))).status_code
            for _ in range(40)
        ]
        assert statuses[:30] == [401] * 30 and statuses[30:] == [429] * 10
        limited = await c.get("/admin/users", headers=auth("rlpa-another-wrong-one"))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "too_many_auth_failures"
        # A key this replica already knows keeps working from the limited address ...
        assert (await c.get("/admin/users", headers=auth())).status_code == 200
        # ... and so does one it has never looked up: the limit refuses wrong keys only, never
        # the address's real clients (everyone behind one NAT).
        fresh = await c.post("/admin/keys", json={"scopes": ["admin"]}, headers=auth())
        authenticator = app.state.rlpa.auth
        authenticator.forget()  # as on a replica that did not create it
        assert (await c.get("/admin/users", headers=auth(fresh.json()["key"]))).status_code == 200
        assert (await c.get("/admin/users", headers=auth("rlpa-wrong-again"))).status_code == 429

        for _ in range(1500):  # distinct wrong keys, more than the negative cache holds
            with pytest.raises(AuthenticationError):
                await authenticator.authenticate(f"rlpa-{secrets.token_hex(8)}", None)
        assert len(authenticator._wrong) <= 1024
        assert len(authenticator._known) <= app.state.rlpa.settings.auth_cache_size
