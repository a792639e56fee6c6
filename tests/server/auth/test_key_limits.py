"""A key's own expiry and per-minute limits, set where keys are managed (the admin API and
`rlpa keys`), as a client meets them: 401 once expired, 429 with Retry-After past its requests or
tokens per minute, in OpenAI's error shape; and when each key was last used."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Gateway, auth
from tests.fixtures.upstreams import ScriptedUpstream
from tests.server.security.helpers import chat_body


@pytest.fixture
def client(scripted_gateway: Gateway) -> httpx.AsyncClient:
    return scripted_gateway.client


async def _key(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    made = await client.post("/admin/keys", json={"scopes": ["chat"], **fields})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def _turn(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=chat_body("u"), headers=auth(key))


async def _fresh_minute() -> None:
    """Limits count in calendar minutes: start a test's requests early in one."""
    if time.time() % 60 > 45:
        await asyncio.sleep(61 - time.time() % 60)


def _refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error


async def test_a_key_past_its_requests_per_minute_gets_429_with_retry_after(
    client: httpx.AsyncClient, upstream_a: ScriptedUpstream
) -> None:
    key = await _key(client, rpm_limit=2)
    assert key["rpm_limit"] == 2
    await _fresh_minute()
    assert [(await _turn(client, key["key"])).status_code for _ in range(2)] == [200, 200]
    refused = await _turn(client, key["key"])
    error = _refused(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error" and "2 requests per minute" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert upstream_a.completed == 2  # the refused turn never reached the model

    raised = await client.patch(f"/admin/keys/{key['id']}", json={"rpm_limit": 0})
    assert raised.status_code == 200 and raised.json()["rpm_limit"] == 0
    assert (await _turn(client, key["key"])).status_code == 200  # 0: no limit, at once


async def test_a_key_whose_minute_holds_its_tokens_gets_429_until_the_next(
    client: httpx.AsyncClient, upstream_a: ScriptedUpstream
) -> None:
    # Each scripted turn is 7 prompt tokens and a few completion tokens: one turn fills 10.
    key = await _key(client, tpm_limit=10)
    await _fresh_minute()
    first = await _turn(client, key["key"])
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] >= 10
    for _ in range(50):  # the tokens are added as the turn ends, off the reply's path
        refused = await _turn(client, key["key"])
        if refused.status_code != 200:
            break
        await asyncio.sleep(0.02)
    error = _refused(refused, 429, "rate_limit_exceeded")
    assert "10 tokens per minute" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key's minute is its own.
    assert (await _turn(client, (await _key(client, tpm_limit=10))["key"])).status_code == 200

    cleared = await client.patch(f"/admin/keys/{key['id']}", json={"tpm_limit": None})
    assert cleared.status_code == 200 and cleared.json()["tpm_limit"] is None
    assert (await _turn(client, key["key"])).status_code == 200


async def test_an_expired_key_is_refused_with_401_and_can_be_renewed(
    client: httpx.AsyncClient,
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired = await _key(client, expires_at=past)
    error = _refused(await _turn(client, expired["key"]), 401, "expired_api_key")
    assert error["type"] == "authentication_error" and "expired at" in error["message"]

    soon = await _key(client, expires_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    assert (await _turn(client, soon["key"])).status_code == 200  # known, and cached, now
    await asyncio.sleep(1.2)
    _refused(await _turn(client, soon["key"]), 401, "expired_api_key")
    renewed = await client.patch(f"/admin/keys/{soon['id']}", json={"expires_at": None})
    assert renewed.status_code == 200 and renewed.json()["expires_at"] is None
    assert (await _turn(client, soon["key"])).status_code == 200

    naive = await client.post("/admin/keys", json={"expires_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 400  # a time without its zone is ambiguous


async def test_updates_are_audited_and_confined_to_live_keys_of_the_tenant(
    client: httpx.AsyncClient,
) -> None:
    key = await _key(client, name="ci")
    changed = await client.patch(f"/admin/keys/{key['id']}", json={"name": "ci-2", "tpm_limit": 5})
    assert (changed.json()["name"], changed.json()["tpm_limit"], changed.json()["rpm_limit"]) == (
        "ci-2",
        5,
        None,
    )
    (event, *_) = (await client.get("/admin/audit")).json()["data"]
    assert (event["action"], event["target"]) == ("key.update", str(key["id"]))
    assert event["detail"]["fields"] == ["name", "tpm_limit"] and event["detail"]["tpm_limit"] == 5
    assert (
        await client.patch(f"/admin/keys/{key['id']}", json={"rpm_limit": -1})
    ).status_code == 400
    assert (await client.delete(f"/admin/keys/{key['id']}")).status_code == 204
    gone = await client.patch(f"/admin/keys/{key['id']}", json={"rpm_limit": 1})
    assert gone.status_code == 404


async def test_last_used_at_says_when_a_key_last_authenticated(
    client: httpx.AsyncClient,
) -> None:
    key = await _key(client)
    assert key["last_used_at"] is None
    before = datetime.now(UTC)
    assert (await client.get("/v1/models", headers=auth(key["key"]))).status_code == 200
    await client.get("/admin/usage")  # writes this replica's counts, last uses included

    listed = {k["id"]: k for k in (await client.get("/admin/keys")).json()["data"]}
    used = datetime.fromisoformat(listed[key["id"]]["last_used_at"])
    assert before - timedelta(seconds=1) <= used <= datetime.now(UTC)
