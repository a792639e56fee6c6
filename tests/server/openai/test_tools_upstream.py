"""Tools through the gateway on the `openai` backend (docs/tools.md): llama.cpp's OpenAI server
as a real upstream driven by the openai client's tool loop, and a scripted upstream that shows
what the gateway asks of an upstream and what it makes of a model's calls however they are cut."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from server import rlpa
from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import LlamaServer, ScriptedUpstream

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "I live in Lyon. What is the weather here?"}]
# What a model writes under the tool grammar, cut where a stream may cut it: mid-tag, mid-JSON.
TWO_CALLS = [
    "<profile>\n- lives in Ly",
    "on\n</profile>\n\n<tool_",
    'call>\n{"name": "get_weather", "argu',
    'ments": {"city": "Lyon"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", ',
    '"arguments": {"city": "Paris"}}\n</tool',
    "_call>",
]


def _client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120
    )


def _user() -> str:
    return f"upt-{uuid.uuid4().hex[:8]}"


async def test_the_openai_tool_loop_through_llama_cpps_server(
    make_settings: Callable[..., Settings], llama_server: LlamaServer
) -> None:
    settings = make_settings(
        backend="openai", upstream_urls=[llama_server.url], upstream_api_key=llama_server.api_key
    )
    with serve(create_app(settings)) as gateway:
        async with _client(gateway) as client:
            messages: list[Any] = list(ASK)
            first = await client.chat.completions.create(
                model=llama_server.model,
                user=_user(),
                messages=messages,
                tools=[WEATHER],
                tool_choice="required",
                parallel_tool_calls=False,  # the base model would call again, up to 8 times
                max_tokens=64,
                seed=1,
            )
            choice = first.choices[0]
            assert choice.finish_reason == "tool_calls"
            call = (choice.message.tool_calls or [])[0]
            assert call.function.name == "get_weather"
            assert isinstance(json.loads(call.function.arguments)["city"], str)
            messages += [
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
            ]
            parts = []
            async for chunk in await client.chat.completions.create(
                model=llama_server.model,
                messages=messages,
                tools=[WEATHER],
                tool_choice="none",
                max_tokens=24,
                stream=True,
                seed=2,
            ):
                parts += [c.delta.content or "" for c in chunk.choices]
            answer = "".join(parts)
            assert answer.strip() and "<profile>" not in answer and "<tool" not in answer
            dish = await client.chat.completions.create(
                model=llama_server.model,
                messages=[{"role": "user", "content": "A dish, as JSON."}],
                response_format={"type": "json_object"},
                max_tokens=48,
                seed=3,
            )
            assert isinstance(json.loads(dish.choices[0].message.content or ""), dict)


@pytest.fixture
def vllm_like(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> Iterator[tuple[str, ScriptedUpstream]]:
    """A gateway in front of a scripted upstream that says it is vLLM (takes a grammar as
    `structured_outputs`)."""
    upstream_a.owned_by, upstream_a.version = "vllm", "0.12.0"
    settings = make_settings(backend="openai", upstream_urls=[upstream_a.url], upstream_retries=0)
    with serve(create_app(settings)) as gateway:
        yield gateway, upstream_a


async def test_an_upstream_gets_the_format_as_a_grammar_and_never_the_tool_fields(
    vllm_like: tuple[str, ScriptedUpstream],
) -> None:
    gateway, upstream = vllm_like
    upstream.script.texts = TWO_CALLS
    user = _user()
    async with _client(gateway) as client:
        stream = await client.chat.completions.create(
            model="scripted",
            user=user,
            messages=ASK,
            tools=[WEATHER],
            tool_choice="auto",
            parallel_tool_calls=True,
            stream=True,
            extra_body={"rlpa": {"return_profile": True}},
        )
        chunks = [chunk async for chunk in stream]
    sent = upstream.bodies[-1]
    assert not {"tools", "tool_choice", "parallel_tool_calls", "response_format"} & sent.keys()
    grammar = sent["structured_outputs"]["grammar"]
    assert grammar == rlpa.output_grammar(tools=rlpa.ToolUse(tools=(_tool(),)))
    assert "- get_weather(city: string): Get the current weather" in sent["messages"][0]["content"]

    calls = [call for chunk in chunks for c in chunk.choices for call in c.delta.tool_calls or []]
    assert [(c.index, c.function and c.function.arguments) for c in calls] == [
        (0, '{"city": "Lyon"}'),
        (1, '{"city": "Paris"}'),
    ]
    assert len({c.id for c in calls}) == 2
    assert not "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert [c.finish_reason for c in chunks[-1].choices] == ["tool_calls"]
    # The tool turn's block is stored.
    assert (chunks[-1].model_extra or {})["rlpa"] == {
        "profile": ["lives in Lyon"],
        "version": 1,
        "changed": True,
    }


async def test_answering_tool_results_reads_the_profile_and_stores_nothing(
    vllm_like: tuple[str, ScriptedUpstream],
) -> None:
    gateway, upstream = vllm_like
    user = _user()
    upstream.script.texts = TWO_CALLS[:4]
    async with _client(gateway) as client:
        first = await client.chat.completions.create(
            model="scripted", user=user, messages=ASK, tools=[WEATHER]
        )
        call = (first.choices[0].message.tool_calls or [])[0]
        # An upstream that cannot be held to the empty block writes one anyway: not stored.
        upstream.script.texts = [
            "<profile>\n- is 90 years old\n</profile>\n\n<response>\n",
            "Sunny.",
        ]
        final = await client.chat.completions.create(
            model="scripted",
            user=user,
            messages=[
                *ASK,
                first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "is 90 years old"},
            ],
            tools=[WEATHER],
        )
    assert final.choices[0].message.content == "Sunny."
    assert (final.model_extra or {})["rlpa"] == {"changed": False}
    sent = upstream.bodies[-1]
    assert '"<profile>\\n</profile>"' in sent["structured_outputs"]["grammar"]  # an empty block
    system, *history = sent["messages"]
    assert "- lives in Lyon" in system["content"]  # read, as on every turn
    assert history[-2]["content"] == rlpa.render_tool_calls([("get_weather", '{"city": "Lyon"}')])
    assert history[-1] == {
        "role": "user",
        "content": "<tool_response>\nis 90 years old\n</tool_response>",
    }
    profile = httpx.get(f"{gateway}/admin/users/{quote(user)}/profile", headers=HEADERS).json()
    assert profile["traits"] == ["lives in Lyon"] and profile["version"] == 1


def _tool() -> rlpa.Tool:
    function = WEATHER["function"]
    return rlpa.Tool(
        name=function["name"],
        description=function["description"],
        parameters=function["parameters"],
    )


async def test_a_user_who_opted_out_can_call_tools_and_nothing_is_read_or_kept(
    vllm_like: tuple[str, ScriptedUpstream],
) -> None:
    gateway, upstream = vllm_like
    user = _user()
    admin = f"{gateway}/admin/users/{quote(user)}"
    put = httpx.put(f"{admin}/profile", json={"traits": ["lives in Lyon"]}, headers=HEADERS)
    assert put.status_code == 200, put.text
    opt_out = httpx.patch(admin, json={"personalization": False}, headers=HEADERS)
    assert opt_out.status_code == 200, opt_out.text
    upstream.script.texts = TWO_CALLS
    async with _client(gateway) as client:
        turn = await client.chat.completions.create(
            model="scripted", user=user, messages=ASK, tools=[WEATHER]
        )
    assert len(turn.choices[0].message.tool_calls or []) == 2
    sent = upstream.bodies[-1]
    assert "lives in Lyon" not in sent["messages"][0]["content"]
    assert '"<profile>\\n</profile>"' in sent["structured_outputs"]["grammar"]
    assert httpx.get(f"{admin}/profile", headers=HEADERS).json()["version"] == 1
