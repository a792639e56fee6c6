"""/v1/me, the end user's own controls over memory: forget one trait, opt out (the user's chat
turns neither read nor write the profile, durably, until they opt back in) and in. Through the
HTTP API with a `profile` key bound to the user; the turns on the real embedded model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.llamacpp import LlamaCppBackend
from server.settings import Settings
from tests.fixtures.app import auth, running


@pytest.fixture(params=["postgres", "sqlite"])
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    db = request.param
    return make_settings(db=db, redis=db == "postgres", default_max_tokens=4, profile_max_tokens=48)


@pytest.fixture
async def gateway(
    settings: Settings, llamacpp_backend: LlamaCppBackend
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings, llamacpp_backend)) as client:
        client.headers.update(auth())
        yield client


def _path(user: str, tail: str = "") -> str:
    return f"/admin/users/{quote(user, safe='')}{tail}"


async def _profile_key(client: httpx.AsyncClient, user: str) -> tuple[int, dict[str, str]]:
    created = await client.post("/admin/keys", json={"scopes": ["profile"], "user": user})
    assert created.status_code == 201, created.text
    return created.json()["id"], auth(created.json()["key"])


async def _turn(client: httpx.AsyncClient, user: str, text: str) -> dict[str, Any]:
    """A chat turn of `user` (through the admin key, which may name any user), with the
    profile it read or kept."""
    body = {
        "model": DEFAULT_ADAPTED_MODEL_NAME,
        "user": user,
        "messages": [{"role": "user", "content": text}],
        "rlpa": {"return_profile": True},
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    rlpa: dict[str, Any] = response.json()["rlpa"]
    return rlpa


async def _export(client: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await client.get(_path(user, "/export"))
    assert response.status_code == 200, response.text
    export: dict[str, Any] = response.json()
    return export


async def test_a_user_forgets_one_trait(gateway: httpx.AsyncClient) -> None:
    user = f"me-{uuid.uuid4().hex[:8]}"
    put = await gateway.put(_path(user, "/profile"), json={"traits": ["likes tea", "plays chess"]})
    assert put.status_code == 200, put.text
    key_id, me = await _profile_key(gateway, user)

    forgot = await gateway.delete(
        "/v1/me/profile/traits", params={"trait": "LIKES TEA"}, headers=me
    )
    assert forgot.status_code == 200, forgot.text
    assert forgot.json()["traits"] == ["plays chess"] and forgot.json()["version"] == 2
    assert forgot.json()["source"] == "user"
    newest = (await gateway.get(_path(user, "/profile/history"))).json()["data"][0]
    assert (newest["removed"], newest["source"], newest["actor_key_id"]) == (
        ["likes tea"],
        "user",
        key_id,
    )
    events = (await gateway.get("/admin/audit")).json()["data"]
    assert any(
        e["action"] == "profile.remove_trait" and e["actor_key_id"] == key_id for e in events
    )

    again = await gateway.delete("/v1/me/profile/traits", params={"trait": "likes tea"}, headers=me)
    assert again.status_code == 404 and again.json()["error"]["code"] == "trait_not_found"
    assert (await gateway.get(_path(user, "/profile"))).json()["version"] == 2


@pytest.mark.slow
async def test_an_opted_out_user_is_neither_read_nor_written_until_opting_back_in(
    gateway: httpx.AsyncClient, settings: Settings, llamacpp_backend: LlamaCppBackend
) -> None:
    user = f"me-{uuid.uuid4().hex[:8]}"
    await gateway.put(_path(user, "/profile"), json={"traits": ["keeps bees"]})
    key_id, me = await _profile_key(gateway, user)

    out = await gateway.patch("/v1/me", json={"personalization": False}, headers=me)
    assert out.status_code == 200, out.text
    assert out.json()["personalization"] is False and out.json()["version"] == 1
    # Plain chat: the stored profile was not in the prompt, and nothing is stored.
    kept = await _turn(gateway, user, "I am a nurse in Seattle and I love hiking.")
    assert kept == {"profile": [], "version": 0, "changed": False}
    assert len((await _export(gateway, user))["versions"]) == 1
    events = (await gateway.get("/admin/audit")).json()["data"]
    assert any(e["action"] == "user.opt_out" and e["actor_key_id"] == key_id for e in events)

    # Stored on the user's row: a gateway started afresh (no cache of it) holds it too.
    async with running(create_app(settings, llamacpp_backend)) as restarted:
        restarted.headers.update(auth())
        assert (await _export(restarted, user))["personalization"] is False
        kept = await _turn(restarted, user, "I also have two cats.")
        assert kept["version"] == 0 and "keeps bees" not in kept["profile"]

        back = await restarted.patch("/v1/me", json={"personalization": True}, headers=me)
        assert back.status_code == 200 and back.json()["personalization"] is True
        read = await _turn(restarted, user, "Any plans for the weekend?")
        assert "keeps bees" in read["profile"] and read["version"] >= 1
    assert len((await _export(gateway, user))["versions"]) >= 1


async def test_a_user_never_seen_can_opt_out_before_the_first_turn(
    gateway: httpx.AsyncClient,
) -> None:
    user = f"me-{uuid.uuid4().hex[:8]}"
    _, me = await _profile_key(gateway, user)
    out = await gateway.patch("/v1/me", json={"personalization": False}, headers=me)
    assert out.status_code == 200, out.text
    assert (out.json()["personalization"], out.json()["version"]) == (False, 0)
    export = await _export(gateway, user)
    assert export["personalization"] is False and export["versions"] == []
    assert (await gateway.patch("/v1/me", json={}, headers=me)).status_code == 400
