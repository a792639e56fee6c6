"""The gateway on the `openai` backend: a real llama.cpp server upstream, and scripted faults."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import LlamaServer, ScriptedUpstream

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
PROFILE_THEN_REPLY = [
    "<profile>\n- drinks green tea\n",
    "- lives in Lyon\n</profile>\n\n<response>\n",
    "Bonjour",
    " from",
    " the",
    " gateway.",
    "\n</response>",
]


@pytest.fixture(scope="module")
def scripted_gateway(
    make_settings: Callable[..., Settings], scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream]
) -> Iterator[str]:
    settings = make_settings(
        backend="openai",
        upstream_urls=[scripted_pair[0].url],
        upstream_read_timeout_s=1.0,
        upstream_retries=1,
    )
    with serve(create_app(settings)) as url:
        yield url


def _profile(gateway: str, user: str) -> httpx.Response:
    return httpx.get(f"{gateway}/admin/users/{quote(user, safe='')}/profile", headers=HEADERS)


async def _sse_lines(gateway: str, user: str) -> AsyncIterator[str]:
    """A raw streamed chat turn, line by line, as an SSE client sees it."""
    body = {
        "model": "scripted",
        "user": user,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", f"{gateway}/v1/chat/completions", json=body, headers=HEADERS) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            yield line


def _client(gateway: str, key: str = ADMIN_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=key, max_retries=0, timeout=30)


async def test_llama_cpp_server_upstream_streams_through_the_gateway(
    make_settings: Callable[..., Settings], llama_server: LlamaServer
) -> None:
    settings = make_settings(
        backend="openai",
        upstream_urls=[llama_server.url],
        upstream_api_key=llama_server.api_key,
    )
    with serve(create_app(settings)) as gateway:
        async with _client(gateway) as client:
            models = [m.id for m in (await client.models.list()).data]
            assert models == [llama_server.model, f"{llama_server.model}-nomemory"]
            whole = await client.chat.completions.create(
                model=models[0],
                messages=[{"role": "user", "content": "Say hello."}],
                max_tokens=24,
                seed=4,
            )
            assert whole.choices[0].message.content
            parts = []
            async for chunk in await client.chat.completions.create(
                model=models[0],
                messages=[{"role": "user", "content": "Say hello."}],
                max_tokens=24,
                stream=True,
            ):
                parts += [c.delta.content or "" for c in chunk.choices]
            assert "<profile>" not in "".join(parts)


async def test_profile_block_from_upstream_is_hidden_and_stored(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.texts = PROFILE_THEN_REPLY
    user = f"up-{uuid.uuid4().hex[:8]}"
    async with _client(scripted_gateway) as client:
        stream = await client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "hi"}],
            user=user,
            stream=True,
            extra_body={"rlpa": {"return_profile": True}},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert text == "Bonjour from the gateway."
    assert (chunks[-1].model_extra or {})["rlpa"] == {
        "profile": ["drinks green tea", "lives in Lyon"],
        "version": 1,
        "changed": True,
    }
    assert _profile(scripted_gateway, user).json()["traits"] == [
        "drinks green tea",
        "lives in Lyon",
    ]
    # The stored profile reaches the upstream in the next turn's system prompt.
    async with _client(scripted_gateway) as client:
        await client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "again"}], user=user
        )
    system = upstream_a.bodies[-1]["messages"][0]["content"]
    assert "- drinks green tea" in system and "- lives in Lyon" in system


async def test_upstream_dying_inside_the_profile_block_stores_nothing(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    """A whole response is a bad gateway. A stream had begun (its role chunk went out as the
    upstream began to answer), so it ends with an error event, and no reply text."""
    upstream_a.script.texts = PROFILE_THEN_REPLY
    upstream_a.script.die_after = 1  # half the block
    user = f"die-{uuid.uuid4().hex[:8]}"
    body = {"model": "scripted", "user": user, "messages": [{"role": "user", "content": "hi"}]}
    whole = httpx.post(
        f"{scripted_gateway}/v1/chat/completions", json=body, headers=HEADERS, timeout=30
    )
    assert whole.status_code == 502, whole.text
    assert whole.json()["error"]["type"] == "upstream_error"
    events = [line async for line in _sse_lines(scripted_gateway, user) if line.startswith("data")]
    role = json.loads(events[0][len("data: ") :])["choices"][0]["delta"]
    assert role == {"role": "assistant", "content": ""}
    assert json.loads(events[1][len("data: ") :])["error"]["type"] == "upstream_error"
    assert events[2:] == ["data: [DONE]"]
    assert _profile(scripted_gateway, user).status_code == 404


async def test_upstream_dying_mid_reply_sends_an_error_event_and_keeps_the_whole_block(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    """The stream ends with an error event. The profile block the model completed before it
    died is stored (its write began as the block closed, as for a client that leaves), and
    before the error event goes out, so the client's retry sees it."""
    upstream_a.script.texts = PROFILE_THEN_REPLY
    upstream_a.script.die_after = 4
    user = f"die-{uuid.uuid4().hex[:8]}"
    events = [line async for line in _sse_lines(scripted_gateway, user) if line.startswith("data")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][len("data: ") :])
    assert error["error"]["type"] == "upstream_error"
    traits = _profile(scripted_gateway, user).json()["traits"]
    assert traits == ["drinks green tea", "lives in Lyon"]


async def test_client_disconnect_after_the_profile_block_still_stores_it(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.texts = PROFILE_THEN_REPLY
    upstream_a.script.delay_s = 0.3
    user = f"gone-{uuid.uuid4().hex[:8]}"
    async with aclosing(_sse_lines(scripted_gateway, user)) as lines:
        async for line in lines:
            if "Bonjour" in line:
                break  # leave mid-reply: closing the generator closes the connection
    for _ in range(50):
        stored = _profile(scripted_gateway, user)
        if stored.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert stored.json()["traits"] == ["drinks green tea", "lives in Lyon"]
    for _ in range(50):  # the upstream sees the gateway leave too
        if upstream_a.disconnects:
            break
        await asyncio.sleep(0.1)
    assert upstream_a.disconnects == 1


@pytest.mark.parametrize(
    ("script", "status", "error"),
    [
        ({"status": 500}, 502, openai.InternalServerError),
        ({"stall_s": 3.0}, 504, openai.InternalServerError),
    ],
)
async def test_upstream_failures_map_to_gateway_statuses(
    scripted_gateway: str,
    upstream_a: ScriptedUpstream,
    script: dict[str, Any],
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    for name, value in script.items():
        setattr(upstream_a.script, name, value)
    user = f"fail-{uuid.uuid4().hex[:8]}"
    async with _client(scripted_gateway) as client:
        with pytest.raises(error) as caught:
            await client.chat.completions.create(
                model="scripted",
                messages=[{"role": "user", "content": "hi"}],
                user=user,
                stream=True,
            )
    assert caught.value.status_code == status
    assert _profile(scripted_gateway, user).status_code == 404


async def test_all_upstreams_refusing_is_503(
    make_settings: Callable[..., Settings], refusing_url: str
) -> None:
    settings = make_settings(backend="openai", upstream_urls=[refusing_url], model="any")
    with serve(create_app(settings)) as gateway:
        async with _client(gateway) as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(
                    model="any", messages=[{"role": "user", "content": "hi"}]
                )
    assert caught.value.status_code == 503


async def _new_key(gateway: str, scopes: list[str], user: str | None = None) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{gateway}/admin/keys", json={"scopes": scopes, "user": user}, headers=HEADERS
        )
    return str(response.json()["key"])


async def test_personalization_off_gets_plain_chat_and_stores_nothing(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    user = f"optout-{uuid.uuid4().hex[:8]}"
    path = f"{scripted_gateway}/admin/users/{user}"
    httpx.put(f"{path}/profile", json={"traits": ["secret trait"]}, headers=HEADERS)
    httpx.patch(path, json={"personalization": False}, headers=HEADERS)
    upstream_a.script.texts = PROFILE_THEN_REPLY
    messages = [{"role": "user", "content": "hello"}]
    async with _client(scripted_gateway) as client:
        await client.chat.completions.create(model="scripted", messages=messages, user=user)
    assert upstream_a.bodies[-1]["messages"] == messages  # no RLPA prompt, no stored profile
    history = httpx.get(f"{path}/profile/history", headers=HEADERS).json()["data"]
    assert [v["traits"] for v in history] == [["secret trait"]]


async def test_a_user_bound_key_overrides_the_user_field(
    scripted_gateway: str, upstream_a: ScriptedUpstream
) -> None:
    bound, claimed = f"bound-{uuid.uuid4().hex[:6]}", f"claimed-{uuid.uuid4().hex[:6]}"
    key = await _new_key(scripted_gateway, ["chat"], user=bound)
    upstream_a.script.texts = PROFILE_THEN_REPLY
    async with _client(scripted_gateway, key) as client:
        await client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}], user=claimed
        )
    assert _profile(scripted_gateway, bound).status_code == 200
    assert _profile(scripted_gateway, claimed).status_code == 404


async def test_an_admin_only_key_cannot_chat(scripted_gateway: str) -> None:
    key = await _new_key(scripted_gateway, ["admin"])
    async with _client(scripted_gateway, key) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": "hi"}]
            )


async def test_a_body_over_the_limit_is_413(scripted_gateway: str) -> None:
    async with _client(scripted_gateway) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": "x" * 2_000_000}]
            )
    assert caught.value.status_code == 413


async def test_requests_over_the_per_key_rate_limit_get_429(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    settings = make_settings(
        backend="openai", upstream_urls=[upstream_a.url], rate_limit_per_minute=2
    )
    with serve(create_app(settings)) as gateway:
        async with _client(gateway, await _new_key(gateway, ["chat"])) as client:
            # Five requests at two a minute hit the limit even if a minute boundary falls between.
            with pytest.raises(openai.RateLimitError) as caught:
                for _ in range(5):
                    await client.models.list()
    assert caught.value.response.headers["retry-after"].isdigit()
