"""Who the end user is: a bound key, then the body's `user` (a string or an object's `id`), then
`safety_identifier`, then the RLPA_USER_HEADER headers, read only when configured. With the
headers Open WebUI 0.12.4 sends, through the official `openai` client, on the real embedded
model (in-process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.llamacpp import LlamaCppBackend
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY

pytestmark = pytest.mark.slow

MODEL = DEFAULT_ADAPTED_MODEL_NAME
# What Open WebUI 0.12.4 sends with ENABLE_FORWARD_USER_INFO_HEADERS=true, as captured
# (/work/shared/clients/open-webui-0.12.4/requests.jsonl): identity is only in these headers.
ALICE = {
    "x-openwebui-auth-type": "jwt",
    "x-openwebui-user-name": "Alice Admin",
    "x-openwebui-user-id": "a6a58c1c-6c9a-4017-b80b-729a46e0938f",
    "x-openwebui-user-email": "alice@example.com",
    "x-openwebui-user-role": "admin",
}
BOB = {
    "x-openwebui-auth-type": "jwt",
    "x-openwebui-user-name": "Bob User",
    "x-openwebui-user-id": "856c352f-39d0-4b61-b5c6-5e5311f9f6e2",
    "x-openwebui-user-email": "bob@example.com",
    "x-openwebui-user-role": "user",
    "x-openwebui-chat-id": "f4d69417-792c-42b1-a9b4-565388fde1df",
}
OPEN_WEBUI = "X-OpenWebUI-User-Id"


def open_webui_person() -> tuple[str, dict[str, str]]:
    """A new person's id and the headers Open WebUI sends for them."""
    person = str(uuid.uuid4())
    return person, ALICE | {"x-openwebui-user-id": person, "x-openwebui-user-name": person}


Gateway = tuple[httpx.AsyncClient, openai.AsyncOpenAI]


@asynccontextmanager
async def gateway(settings: Settings, backend: LlamaCppBackend) -> AsyncIterator[Gateway]:
    async with running(create_app(settings, backend)) as http:
        http.headers.update(auth())
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        yield http, chat


@pytest.fixture
def quick(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for short turns: a few reply tokens, a bounded block."""

    def make(**overrides: Any) -> Settings:
        return make_settings(default_max_tokens=4, profile_max_tokens=48, **overrides)

    return make


@pytest.fixture
async def owui(
    quick: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> AsyncIterator[Gateway]:
    """The gateway configured for Open WebUI: its user-id header names the user."""
    async with gateway(quick(user_header=OPEN_WEBUI), llamacpp_backend) as pair:
        yield pair


async def _known(http: httpx.AsyncClient, user: str) -> bool:
    """Whether the gateway keeps a user of that id (a turn with a user creates it)."""
    response = await http.get(f"/admin/users/{quote(user, safe='')}/export")
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


async def _turn(chat: openai.AsyncOpenAI, **options: Any) -> None:
    reply = await chat.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi! I grow tomatoes."}], **options
    )
    assert reply.choices[0].message.content is not None


async def test_open_webui_headers_name_the_user_when_the_body_names_none(owui: Gateway) -> None:
    http, chat = owui
    await _turn(chat, extra_headers=ALICE)  # as Open WebUI sends a whole reply
    assert await _known(http, ALICE["x-openwebui-user-id"])
    stream = await chat.chat.completions.create(  # and a streamed chat, as the browser does
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        extra_headers=BOB,
    )
    assert [chunk async for chunk in stream]
    assert await _known(http, BOB["x-openwebui-user-id"])
    assert not await _known(http, BOB["x-openwebui-user-email"])


async def test_the_body_names_the_user_before_a_header(owui: Gateway) -> None:
    http, chat = owui
    person, headers = open_webui_person()
    shared = f"owui-shared-{uuid.uuid4().hex[:8]}"  # `user` set as an Open WebUI model parameter
    await _turn(chat, user=shared, extra_headers=headers)
    assert await _known(http, shared)
    assert not await _known(http, person)


async def test_safety_identifier_names_the_user_after_user_and_before_a_header(
    owui: Gateway,
) -> None:
    http, chat = owui
    person, headers = open_webui_person()
    safety = f"safety-{uuid.uuid4().hex[:8]}"
    await _turn(chat, safety_identifier=safety, extra_headers=headers)
    assert await _known(http, safety) and not await _known(http, person)

    named = f"named-{uuid.uuid4().hex[:8]}"
    other = f"safety-{uuid.uuid4().hex[:8]}"
    await _turn(chat, user=named, safety_identifier=other)
    assert await _known(http, named) and not await _known(http, other)


async def test_a_header_names_no_one_unless_configured(
    quick: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> None:
    person, headers = open_webui_person()
    async with gateway(quick(), llamacpp_backend) as (http, chat):
        await _turn(chat, extra_headers=headers)
        assert not await _known(http, person)


async def test_of_several_headers_the_first_configured_one_present_wins(
    quick: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> None:
    settings = quick(user_header=f" X-Forwarded-User , {OPEN_WEBUI}")
    assert settings.user_header == ["X-Forwarded-User", OPEN_WEBUI]
    person, headers = open_webui_person()
    forwarded = f"fwd-{uuid.uuid4().hex[:8]}"
    async with gateway(settings, llamacpp_backend) as (http, chat):
        await _turn(chat, extra_headers=headers)
        assert await _known(http, person)

        second, more = open_webui_person()
        await _turn(chat, extra_headers=more | {"X-Forwarded-User": forwarded})
        assert await _known(http, forwarded) and not await _known(http, second)


async def test_a_key_bound_to_a_user_wins_over_every_name_in_the_request(owui: Gateway) -> None:
    http, chat = owui
    bound = f"bound-{uuid.uuid4().hex[:8]}"
    created = await http.post("/admin/keys", json={"scopes": ["chat"], "user": bound})
    assert created.status_code == 201, created.text
    person, headers = open_webui_person()
    named, safety = f"named-{uuid.uuid4().hex[:8]}", f"safety-{uuid.uuid4().hex[:8]}"
    await _turn(
        chat.with_options(api_key=created.json()["key"]),
        user=named,
        safety_identifier=safety,
        extra_headers=headers,
    )
    assert await _known(http, bound)
    for other in (named, safety, person):
        assert not await _known(http, other)


async def test_a_user_object_names_its_id_and_one_without_an_id_is_a_clear_400(
    owui: Gateway,
) -> None:
    http, chat = owui
    person = str(uuid.uuid4())
    # As Open WebUI's pipelines send the user: an object.
    pipeline_user = {"id": person, "name": "Pat", "email": "pat@example.com", "role": "user"}
    await _turn(chat, extra_body={"user": pipeline_user})
    assert await _known(http, person)

    with pytest.raises(openai.BadRequestError) as refused:
        await _turn(chat, extra_body={"user": {"name": "Pat"}})
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "user"
    assert "string `id`" in error["message"]
