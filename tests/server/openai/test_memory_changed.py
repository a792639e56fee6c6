"""A turn says whether it changed the stored profile: `rlpa.changed` in the response (a stream's
last chunk) and `X-RLPA-Memory-Changed` on a whole response, so that a UI can show "memory
updated". On the real embedded model, and on the scripted upstream where a test needs to know
what the model will say."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
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
from tests.fixtures.upstreams import ScriptedUpstream, remembering

HEADER = "X-RLPA-Memory-Changed"


@pytest.fixture
async def scripted(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose upstream stores each turn's user message as a trait."""
    upstream_a.script.respond = remembering
    settings = make_settings(backend="openai", upstream_urls=[upstream_a.url])
    async with running(create_app(settings)) as http:
        http.headers.update(auth())
        yield http


async def _say(http: httpx.AsyncClient, fact: str, **body: Any) -> httpx.Response:
    payload = {"model": "scripted", "messages": [{"role": "user", "content": fact}], **body}
    response = await http.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200, response.text
    return response


def _last_chunk(response: httpx.Response) -> dict[str, Any]:
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
    last: dict[str, Any] = json.loads(data[-1])
    return last


async def test_a_turn_says_whether_it_changed_the_profile(scripted: httpx.AsyncClient) -> None:
    user = f"mem-{uuid.uuid4().hex[:8]}"
    first = await _say(scripted, "likes tea", user=user)
    assert first.json()["rlpa"] == {"changed": True} and first.headers[HEADER] == "true"
    again = await _say(scripted, "likes tea", user=user)  # restates what is stored
    assert again.json()["rlpa"] == {"changed": False} and again.headers[HEADER] == "false"

    streamed = await _say(scripted, "plays go", user=user, stream=True)
    assert HEADER not in streamed.headers  # sent before the block was written
    assert _last_chunk(streamed)["rlpa"] == {"changed": True}
    with_usage = await _say(
        scripted, "plays go", user=user, stream=True, stream_options={"include_usage": True}
    )
    last = _last_chunk(with_usage)
    assert last["choices"] == [] and last["rlpa"] == {"changed": False}

    profile = await scripted.get(f"/admin/users/{quote(user, safe='')}/profile")
    assert profile.json()["traits"] == ["likes tea", "plays go"]
    assert profile.json()["version"] == 2  # the two turns that said they changed it


async def test_a_turn_that_keeps_no_profile_says_nothing(scripted: httpx.AsyncClient) -> None:
    user = f"mem-{uuid.uuid4().hex[:8]}"
    for response in (
        await _say(scripted, "likes tea"),  # no user
        await _say(scripted, "likes tea", user=user, rlpa={"mode": "off"}),  # temporary chat
    ):
        assert response.json()["rlpa"] is None and HEADER not in response.headers
    temporary = await _say(scripted, "likes tea", rlpa={"return_profile": True})
    assert temporary.json()["rlpa"] == {"profile": ["likes tea"], "version": 0, "changed": False}
    assert temporary.headers[HEADER] == "false"


@pytest.fixture
async def embedded(
    make_settings: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> AsyncIterator[tuple[httpx.AsyncClient, openai.AsyncOpenAI]]:
    settings = make_settings(default_max_tokens=8, profile_max_tokens=64)
    async with running(create_app(settings, llamacpp_backend)) as http:
        http.headers.update(auth())
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        yield http, chat


async def _versions(http: httpx.AsyncClient, user: str) -> int:
    export = await http.get(f"/admin/users/{quote(user, safe='')}/export")
    return len(export.json()["versions"]) if export.status_code == 200 else 0


@pytest.mark.slow
async def test_the_flag_says_what_the_embedded_model_stored(
    embedded: tuple[httpx.AsyncClient, openai.AsyncOpenAI],
) -> None:
    http, chat = embedded
    user = f"mem-{uuid.uuid4().hex[:8]}"
    said = ["Hi! I am a nurse in Seattle and I love hiking.", "I also have two cats."]
    for index, fact in enumerate(said):
        before = await _versions(http, user)
        messages: list[Any] = [{"role": "user", "content": fact}]
        if index == 0:
            raw = await chat.chat.completions.with_raw_response.create(
                model=DEFAULT_ADAPTED_MODEL_NAME, messages=messages, user=user, seed=7
            )
            changed = (raw.parse().model_extra or {})["rlpa"]["changed"]
            assert raw.headers[HEADER] == ("true" if changed else "false")
        else:
            chunks = [
                chunk
                async for chunk in await chat.chat.completions.create(
                    model=DEFAULT_ADAPTED_MODEL_NAME, messages=messages, user=user, stream=True
                )
            ]
            changed = (chunks[-1].model_extra or {})["rlpa"]["changed"]
        assert changed == (await _versions(http, user) > before), fact
