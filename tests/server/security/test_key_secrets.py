"""A key's secret is shown once, in the response that created it, and never logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY

_NO_UPSTREAM = ["http://127.0.0.1:9/v1"]


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record, formatted and raw, with its arguments and traceback."""
    return "\n".join(
        f"{r.getMessage()} {r.msg!r} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )


async def test_key_secrets_never_reach_logs_or_later_responses(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "rlpa-this-key-was-never-created-0123456789"
    settings = make_settings(backend="openai", upstream_urls=_NO_UPSTREAM)
    later: list[httpx.Response] = []
    async with running(create_app(settings)) as client:
        created = await client.post(
            "/admin/keys", json={"name": "ci", "scopes": ["admin"]}, headers=auth()
        )
        assert created.status_code == 201
        secret, key_id = created.json()["key"], created.json()["id"]
        later.append(await client.get("/admin/users", headers=auth(secret)))
        later.append(await client.get("/admin/keys", headers=auth(secret)))
        later.append(await client.get("/admin/keys", headers=auth()))
        later.append(await client.get("/admin/users", headers=auth(wrong)))
        later.append(await client.get("/v1/models", headers=auth(secret)))  # 403: no chat scope
        later.append(await client.delete(f"/admin/keys/{key_id}", headers=auth()))
        later.append(await client.delete(f"/admin/keys/{key_id}", headers=auth()))
        later.append(await client.get("/admin/users", headers=auth(secret)))
        later.append(await client.get("/admin/keys", headers=auth()))
    assert [r.status_code for r in later] == [200, 200, 200, 401, 403, 204, 404, 401, 200]
    assert secret.startswith(created.json()["prefix"])
    for response in later:
        assert secret not in response.text and wrong not in response.text
        assert ADMIN_KEY not in response.text
    logged = _logged(caplog)
    assert caplog.records  # the app did log, and at DEBUG
    for leaked in (secret, wrong, ADMIN_KEY):
        assert leaked not in logged


async def test_a_revoked_configured_key_stays_revoked_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    configured = "rlpa-configured-admin-key-0123456789"
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/revoked.db",
        admin_api_key=configured,
        backend="openai",
        upstream_urls=_NO_UPSTREAM,
    )
    async with running(create_app(settings)) as client:
        first = (await client.get("/admin/keys", headers=auth(configured))).json()["data"][0]
        other = await client.post(
            "/admin/keys", json={"scopes": ["admin"]}, headers=auth(configured)
        )
        other_key = other.json()["key"]
        assert (
            await client.delete(f"/admin/keys/{first['id']}", headers=auth(other_key))
        ).status_code == 204
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    async with running(create_app(settings)) as client:
        assert (await client.get("/admin/users", headers=auth(configured))).status_code == 401
        assert (await client.get("/admin/users")).status_code == 401  # auth is still on
        assert (await client.get("/admin/users", headers=auth(other_key))).status_code == 200
    revoked = [r for r in caplog.records if "stays revoked" in r.getMessage()]
    assert revoked and revoked[0].levelno == logging.WARNING
    assert configured not in _logged(caplog)


async def test_revoking_every_key_never_turns_authentication_off(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/none.db",
        backend="openai",
        upstream_urls=_NO_UPSTREAM,
    )
    async with running(create_app(settings)) as client:
        assert (await client.get("/admin/users")).status_code == 200  # loopback, no key ever
        created = (await client.post("/admin/keys", json={"scopes": ["admin"]})).json()
        assert (await client.get("/admin/users")).status_code == 401
        revoke = await client.delete(f"/admin/keys/{created['id']}", headers=auth(created["key"]))
        assert revoke.status_code == 204
        assert (await client.get("/admin/users")).status_code == 401
    async with running(create_app(settings)) as client:  # and not after a restart either
        assert (await client.get("/admin/users")).status_code == 401
