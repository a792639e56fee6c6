"""The trust model README documents, shown as behaviour.

An unbound chat key speaks for its application: it may name any `user` of its tenant, and so
read that user's profile (through the model and `return_profile`) and write it. It cannot reach
another tenant's users; a key bound to one user speaks only for that user.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.upstreams import ScriptedUpstream
from tests.server.security.helpers import chat_body, key_in_tenant, new_user, user_path


@dataclass
class Gateway:
    client: httpx.AsyncClient
    settings: Settings


@pytest.fixture(scope="module")
async def gateway(
    make_settings: Callable[..., Settings],
    scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream],
) -> AsyncIterator[Gateway]:
    settings = make_settings(backend="openai", upstream_urls=[scripted_pair[0].url])
    async with running(create_app(settings)) as client:
        yield Gateway(client, settings)


async def _user_with(gateway: Gateway, trait: str) -> str:
    user = new_user("trust")
    put = await gateway.client.put(
        user_path(user, "/profile"), json={"traits": [trait]}, headers=auth()
    )
    assert put.status_code == 200
    return user


async def _traits(gateway: Gateway, user: str) -> list[str] | None:
    response = await gateway.client.get(user_path(user, "/profile"), headers=auth())
    return None if response.status_code == 404 else list(response.json()["traits"])


def _system_prompt(upstream: ScriptedUpstream) -> str:
    return str(upstream.bodies[-1]["messages"][0]["content"])


async def test_an_unbound_chat_key_may_read_and_write_any_user_of_its_tenant(
    gateway: Gateway, upstream_a: ScriptedUpstream
) -> None:
    private = f"private detail {uuid.uuid4().hex[:6]}"
    user = await _user_with(gateway, private)
    _, chat_key = await key_in_tenant(gateway.settings, "default", ["chat"])
    upstream_a.script.texts = [
        f"<profile>\n- {private}\n- planted by an app\n</profile>\n\n<response>\nok\n</response>"
    ]
    body = chat_body(user, rlpa={"return_profile": True})
    response = await gateway.client.post("/v1/chat/completions", json=body, headers=auth(chat_key))
    assert response.status_code == 200, response.text
    assert private in _system_prompt(upstream_a)  # read, through the model
    assert private in response.json()["rlpa"]["profile"]  # read, directly
    assert await _traits(gateway, user) == [private, "planted by an app"]  # written


async def test_a_chat_key_never_reaches_another_tenants_user(
    gateway: Gateway, upstream_a: ScriptedUpstream
) -> None:
    private = f"private detail {uuid.uuid4().hex[:6]}"
    user = await _user_with(gateway, private)
    _, foreign = await key_in_tenant(gateway.settings, f"other-{uuid.uuid4().hex[:6]}", ["chat"])
    upstream_a.script.texts = ["<profile>\n- planted\n</profile>\n\n<response>\nok\n</response>"]
    body = chat_body(user, rlpa={"return_profile": True})
    response = await gateway.client.post("/v1/chat/completions", json=body, headers=auth(foreign))
    assert response.status_code == 200, response.text
    assert private not in _system_prompt(upstream_a)
    assert private not in str(response.json()["rlpa"])
    assert await _traits(gateway, user) == [private]  # the other tenant wrote its own user


async def test_a_bound_chat_key_acts_only_as_its_user_whatever_user_it_names(
    gateway: Gateway, upstream_a: ScriptedUpstream
) -> None:
    mine, theirs = f"mine {uuid.uuid4().hex[:6]}", f"theirs {uuid.uuid4().hex[:6]}"
    me, other = await _user_with(gateway, mine), await _user_with(gateway, theirs)
    _, bound = await key_in_tenant(gateway.settings, "default", ["chat"], user=me)
    for named in (other, None):
        upstream_a.script.texts = [
            f"<profile>\n- {mine}\n- said hi\n</profile>\n\n<response>\nok\n</response>"
        ]
        body = chat_body(named, rlpa={"return_profile": True})
        response = await gateway.client.post("/v1/chat/completions", json=body, headers=auth(bound))
        assert response.status_code == 200, response.text
        assert mine in _system_prompt(upstream_a) and theirs not in _system_prompt(upstream_a)
        assert theirs not in str(response.json()["rlpa"])
    assert await _traits(gateway, me) == [mine, "said hi"]
    assert await _traits(gateway, other) == [theirs]
