"""The chat API through the official openai client, on the real embedded model."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import openai
import pytest
import redis.asyncio as aioredis
from openai.types import CompletionUsage

from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.gateway import MODEL
from tests.fixtures.live import serve

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hi! I am a nurse in Seattle and I love hiking."}]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _profile(gateway_url: str, user: str) -> httpx.Response:
    return httpx.get(
        f"{gateway_url}/admin/users/{quote(user, safe='')}/profile",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )


async def test_completion_returns_a_visible_reply_and_real_usage(
    client: openai.AsyncOpenAI,
) -> None:
    response = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=48,
        seed=1,  # type: ignore[arg-type]
    )
    text = response.choices[0].message.content or ""
    assert text.strip()
    assert "<profile>" not in text and "</profile>" not in text and "<response>" not in text
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 50 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_stream_matches_shape_and_reports_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=48,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    text = "".join(parts)
    assert "<profile>" not in text and "<response>" not in text
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0


async def test_n_returns_that_many_choices(client: openai.AsyncOpenAI) -> None:
    response = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=24,
        n=2,
        seed=3,  # type: ignore[arg-type]
    )
    assert [c.index for c in response.choices] == [0, 1]


@pytest.mark.parametrize("max_tokens", [5, 12])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_max_tokens_bounds_the_visible_reply_not_the_hidden_block(
    client: openai.AsyncOpenAI, gateway_url: str, max_tokens: int, stream: bool
) -> None:
    user = f"short-{uuid.uuid4().hex[:8]}"
    turn = await _turn(client, user=user, max_tokens=max_tokens, seed=2, stream=stream)
    assert turn.finish_reason == "length"
    assert turn.text.strip() and len(turn.text.split()) <= max_tokens
    assert turn.usage is not None and turn.usage.completion_tokens > max_tokens  # block + reply
    assert turn.rlpa["version"] >= 1  # the block was written whole, and stored
    assert _profile(gateway_url, user).json()["traits"] == turn.rlpa["profile"]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_stop_string_ends_the_reply_never_the_hidden_block(
    client: openai.AsyncOpenAI, gateway_url: str, stream: bool
) -> None:
    user = f"newline-{uuid.uuid4().hex[:8]}"
    turn = await _turn(client, user=user, stop=["\n"], seed=1, stream=stream)
    assert turn.text.strip() and "\n" not in turn.text
    assert turn.finish_reason == "stop"
    assert turn.rlpa["version"] >= 1 and turn.rlpa["profile"]
    assert _profile(gateway_url, user).json()["traits"] == turn.rlpa["profile"]


@pytest.mark.parametrize("n", [1, 2])
async def test_streamed_and_whole_turns_carry_the_same_reply_usage_and_profile(
    client: openai.AsyncOpenAI, n: int
) -> None:
    # No user: the prompt is the same every time. The first call puts it in llama.cpp's prefix
    # cache, so that the seeds repeat their text (see test_same_seed_gives_same_text).
    await _turn(client, n=n, seed=4)
    whole = await _turn(client, n=n, seed=4)
    streamed = await _turn(client, n=n, seed=4, stream=True)
    assert streamed == whole
    assert whole.text.strip() and whole.rlpa["version"] == 0


@dataclass
class Turn:
    """What a client reads of a turn, however it was sent."""

    texts: list[str]
    finish_reasons: list[str | None]
    usage: CompletionUsage | None
    rlpa: dict[str, Any]

    @property
    def text(self) -> str:
        return self.texts[0]

    @property
    def finish_reason(self) -> str | None:
        return self.finish_reasons[0]


async def _turn(
    client: openai.AsyncOpenAI, *, stream: bool = False, n: int = 1, **kwargs: Any
) -> Turn:
    """A turn on HELLO with its profile asked back, read whole or from the stream's chunks."""
    args: dict[str, Any] = {
        "model": MODEL,
        "messages": HELLO,
        "max_tokens": 48,
        "n": n,
        "extra_body": {"rlpa": {"return_profile": True}},
        **kwargs,
    }
    if not stream:
        response = await client.chat.completions.create(**args)
        return Turn(
            texts=[choice.message.content or "" for choice in response.choices],
            finish_reasons=[choice.finish_reason for choice in response.choices],
            usage=response.usage,
            rlpa=(response.model_extra or {})["rlpa"],
        )
    chunks = await client.chat.completions.create(
        **args, stream=True, stream_options={"include_usage": True}
    )
    texts, reasons = [""] * n, [None] * n
    usage, rlpa = None, None
    async for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            reasons[choice.index] = choice.finish_reason or reasons[choice.index]
        usage = chunk.usage or usage
        rlpa = (chunk.model_extra or {}).get("rlpa") or rlpa
    assert rlpa is not None and (chunk.model_extra or {})["rlpa"] == rlpa  # on the last chunk
    return Turn(texts=texts, finish_reasons=reasons, usage=usage, rlpa=rlpa)


async def test_models_are_listed_and_retrievable(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == [MODEL, f"{MODEL}-nomemory"]  # and its memory-off id
    assert (await client.models.retrieve(MODEL)).id == MODEL
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-nothing")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ({"temperature": 7}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"tool_choice": "required"}, "tool_choice"),  # no tools to call
        ({"functions": [{"name": "f"}]}, "functions"),  # the legacy form of tools
        ({"logprobs": True}, "logprobs"),
    ],
)
async def test_bad_requests_are_400_in_openai_shape(
    client: openai.AsyncOpenAI, kwargs: dict[str, object], param: str
) -> None:
    args: dict[str, object] = {"model": MODEL, "messages": HELLO, "max_tokens": 4, **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**args)  # type: ignore[call-overload]
    assert caught.value.status_code == 400
    assert param in str(caught.value.body)


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="nope", messages=HELLO)  # type: ignore[arg-type]
    assert "model_not_found" in str(caught.value.body)


async def test_wrong_key_is_401(gateway_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="rlpa-wrong") as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]


async def test_conversation_stores_a_profile_that_changes_version(
    client: openai.AsyncOpenAI, gateway_url: str
) -> None:
    user = f"chat-{uuid.uuid4().hex[:8]}"
    messages: list[dict[str, str]] = []
    versions: list[int] = []
    turns = [
        "Hi there.",
        "I work night shifts as a nurse in Seattle.",
        "On weekends I go hiking with my two dogs. I am vegetarian.",
    ]
    for i, text in enumerate(turns):
        messages.append({"role": "user", "content": text})
        response = await client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            user=user,
            seed=i,
            max_tokens=96,
            extra_body={"rlpa": {"return_profile": True}},
        )
        reply = response.choices[0].message.content or ""
        assert "<profile>" not in reply
        messages.append({"role": "assistant", "content": reply})
        extension = (response.model_extra or {})["rlpa"]
        versions.append(extension["version"])
        stored = _profile(gateway_url, user)
        if extension["version"]:
            assert stored.json()["traits"] == extension["profile"]
            assert stored.json()["version"] == extension["version"]
    assert versions[-1] >= 2 and versions == sorted(versions)


async def test_temporary_chat_neither_reads_nor_writes(
    client: openai.AsyncOpenAI, gateway_url: str
) -> None:
    user = f"temp-{uuid.uuid4().hex[:8]}"
    response = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        user=user,
        max_tokens=64,
        extra_body={"rlpa": {"mode": "off", "return_profile": True}},
    )
    assert (response.model_extra or {})["rlpa"]["version"] == 0
    assert _profile(gateway_url, user).status_code == 404


async def _stored(pg_url: str, redis_client: aioredis.Redis, prefix: str) -> tuple[int, ...]:
    """(end users, profile versions) in the gateway's PostgreSQL, cached profiles in its Redis."""
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        users = await conn.fetchval("SELECT count(*) FROM end_user")
        versions = await conn.fetchval("SELECT count(*) FROM profile_version")
    finally:
        await conn.close()
    cached = [key async for key in redis_client.scan_iter(match=f"{prefix}p:*")]
    return int(users), int(versions), len(cached)


async def test_no_user_is_served_and_stores_nothing(
    client: openai.AsyncOpenAI, pg_url: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    before = await _stored(pg_url, redis_client, redis_prefix)
    response = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,  # the model may well write a profile block: nobody is there to keep it
        max_tokens=64,  # type: ignore[arg-type]
        extra_body={"rlpa": {"return_profile": True}},
    )
    assert response.choices[0].message.content is not None
    assert (response.model_extra or {})["rlpa"]["version"] == 0
    assert await _stored(pg_url, redis_client, redis_prefix) == before


async def test_streamed_n_choices_carry_their_index(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=16,
        n=2,
        seed=5,
        stream=True,  # type: ignore[arg-type]
    )
    finished: dict[int, str | None] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert sorted(finished) == [0, 1]


async def test_stop_sequence_never_appears_and_ends_the_reply(client: openai.AsyncOpenAI) -> None:
    free = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=64,
        seed=9,  # type: ignore[arg-type]
    )
    words = (free.choices[0].message.content or "").split()
    assert len(words) > 3
    stop = words[2]
    stopped = await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=64,
        seed=9,
        stop=[stop],  # type: ignore[arg-type]
    )
    text = stopped.choices[0].message.content or ""
    assert stop not in text and stopped.choices[0].finish_reason == "stop"
    assert (free.choices[0].message.content or "").startswith(text.rstrip())


async def test_concurrent_requests_never_mix_outputs(client: openai.AsyncOpenAI) -> None:
    prompts = [
        [{"role": "user", "content": "Tell me about cats."}],
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Give me a pasta recipe."}],
    ]

    async def ask(messages: list[dict[str, str]]) -> str:
        response = await client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=32,
            seed=11,  # type: ignore[arg-type]
        )
        return response.choices[0].message.content or ""

    one_by_one = [await ask(m) for m in prompts]
    together = await asyncio.gather(*(ask(m) for m in prompts))
    assert list(together) == one_by_one


async def test_personalization_off_user_stores_nothing(
    client: openai.AsyncOpenAI, gateway_url: str
) -> None:
    user = f"off-{uuid.uuid4().hex[:8]}"
    httpx.patch(
        f"{gateway_url}/admin/users/{user}",
        json={"personalization": False},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    await client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=48,
        user=user,  # type: ignore[arg-type]
    )
    assert _profile(gateway_url, user).status_code == 404


async def test_the_role_chunk_comes_first_and_keep_alives_while_the_block_is_written(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(default_max_tokens=24, stream_keepalive_s=0.02)
    body = {
        "model": MODEL,
        "user": f"alive-{uuid.uuid4().hex[:8]}",
        "messages": HELLO,
        "seed": 1,
        "stream": True,
        "rlpa": {"return_profile": True},
    }
    lines: list[str] = []
    with serve(create_app(settings)) as url:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=AUTH) as response,
        ):
            assert response.status_code == 200
            lines = [line async for line in response.aiter_lines() if line]
    chunks = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: {")]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    first_text = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line
    )
    # The block is written between the role chunk and the first reply text: the stream says
    # it is alive meanwhile, and clients skip the comments.
    assert ": keep-alive" in lines[1:first_text]
    assert lines[0].startswith("data: {") and lines[-1] == "data: [DONE]"
    assert chunks[-1]["rlpa"]["version"] >= 1
