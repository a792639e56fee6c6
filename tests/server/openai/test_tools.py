"""Tools and JSON replies through the gateway on the real embedded model (docs/tools.md): the
official openai client's tool loop, streamed tool-call deltas, tool_choice, response_format,
langchain-openai's bind_tools and with_structured_output, and Open WebUI's request with its
built-in tools. The model is SmolLM2-135M: what it says is weak, but the grammar holds every call
to its tool's schema and the profile block is still written first."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.gateway import MODEL

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
NOTE: Any = {
    "type": "function",
    "function": {
        "name": "write_note",
        "description": "Save a note for the user.",
        "parameters": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "text": {"type": "string"}},
            "required": ["title", "text"],
        },
    },
}
ASK = [{"role": "user", "content": "I am a nurse and I live in Lyon. What is the weather here?"}]
OPEN_WEBUI = Path(__file__).parents[2] / "fixtures/open_webui_chat_with_tools.json"


def _user() -> str:
    return f"tools-{uuid.uuid4().hex[:8]}"


def _stored(gateway_url: str, user: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway_url}/admin/users/{quote(user)}/profile", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_openai_tool_loop_calls_then_answers_and_only_the_user_turn_writes(
    client: openai.AsyncOpenAI, gateway_url: str
) -> None:
    user = _user()
    messages: list[Any] = list(ASK)
    first = await client.chat.completions.create(
        model=MODEL,
        user=user,
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        seed=1,
        extra_body={"rlpa": {"return_profile": True}},
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    # The tool turn wrote its block first, and it was stored.
    wrote = (first.model_extra or {})["rlpa"]
    assert wrote["changed"] and wrote["version"] >= 1 and wrote["profile"]

    # The loop as the openai docs write it: run the calls, send the results, ask again.
    answer = None
    for _ in range(3):
        messages.append(choice.message.model_dump(exclude_none=True))
        for call in choice.message.tool_calls or []:
            result = {"city": "Lyon", "sky": "sunny", "celsius": 21}
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )
        turn = await client.chat.completions.create(
            model=MODEL,
            user=user,
            messages=messages,
            tools=[WEATHER],
            seed=2,
            extra_body={"rlpa": {"return_profile": True}},
        )
        choice = turn.choices[0]
        # Answering tool results reads the profile and learns nothing: the block is empty.
        assert (turn.model_extra or {})["rlpa"] == {**wrote, "changed": False}
        if choice.finish_reason != "tool_calls":
            answer = choice.message.content
            break
    assert answer and answer.strip()
    assert _stored(gateway_url, user)["version"] == wrote["version"]


async def test_tool_calls_stream_as_openai_deltas(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        user=_user(),
        messages=[{"role": "user", "content": "Note that my sister Ana visits on Friday."}],
        tools=[WEATHER, NOTE],
        tool_choice={"type": "function", "function": {"name": "write_note"}},
        stream=True,
        stream_options={"include_usage": True},
        seed=3,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.delta for chunk in chunks for c in chunk.choices]
    assert deltas[0].role == "assistant"
    calls = [call for delta in deltas for call in delta.tool_calls or []]
    assert calls and [c.index for c in calls] == list(range(len(calls)))
    for call in calls:
        assert call.id and call.type == "function" and call.function is not None
        assert call.function.name == "write_note"  # the named function, and only it
        assert set(json.loads(call.function.arguments or "")) == {"title", "text"}
    assert not "".join(d.content or "" for d in deltas)
    finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_tool_choice_none_replies_and_parallel_false_makes_one_call(
    client: openai.AsyncOpenAI,
) -> None:
    none = await client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, NOTE], tool_choice="none", seed=4
    )
    assert none.choices[0].finish_reason in ("stop", "length")
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    one = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, NOTE],
        tool_choice="required",
        parallel_tool_calls=False,
        seed=5,
    )
    assert one.choices[0].finish_reason == "tool_calls"
    assert len(one.choices[0].message.tool_calls or []) == 1


DISH = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "minutes": {"type": "integer"}},
    "required": ["name", "minutes"],
    "additionalProperties": False,
}


async def test_response_format_holds_the_reply_to_json_and_the_profile_is_still_written(
    client: openai.AsyncOpenAI,
) -> None:
    schema = await client.chat.completions.create(
        model=MODEL,
        user=_user(),
        messages=[{"role": "user", "content": "I am a vegan chef in Oslo. Suggest a dish."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "dish", "schema": DISH, "strict": True},
        },
        seed=1,
        extra_body={"rlpa": {"return_profile": True}},
    )
    dish = json.loads(schema.choices[0].message.content or "")
    assert set(dish) == {"name", "minutes"} and isinstance(dish["minutes"], int)
    extension = (schema.model_extra or {})["rlpa"]
    assert extension["changed"] and extension["version"] >= 1
    anything = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
        response_format={"type": "json_object"},
        seed=2,
    )
    assert isinstance(json.loads(anything.choices[0].message.content or ""), dict)


NAMED_UNKNOWN = {"type": "function", "function": {"name": "not_offered"}}
NO_SCHEMA = {"type": "json_schema", "json_schema": {"name": "x"}}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [WEATHER], "tool_choice": NAMED_UNKNOWN}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools"),
        ({"messages": [{"role": "tool", "content": "x", "tool_calls": 3}]}, "messages"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": NO_SCHEMA}, "response_format"),
    ],
)
async def test_malformed_tool_requests_are_400(
    client: openai.AsyncOpenAI, kwargs: dict[str, Any], param: str
) -> None:
    args: dict[str, Any] = {"model": MODEL, "messages": ASK, **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**args)
    assert param in str(caught.value.body)


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}."


class Dish(BaseModel):
    """A dish to cook."""

    name: str = Field(description="what the dish is called")
    minutes: int = Field(description="how long it takes")


def _langchain(gateway_url: str, user: str) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{gateway_url}/v1",
        api_key=ADMIN_KEY,  # type: ignore[arg-type]
        model=MODEL,
        max_retries=0,
        timeout=300,
        seed=1,
        model_kwargs={"user": user},
    )


def test_langchain_bind_tools_calls_the_tool_whole_and_streamed(gateway_url: str) -> None:
    llm = _langchain(gateway_url, _user()).bind_tools([get_weather], tool_choice="any")
    message = llm.invoke("I live in Paris. What is the weather like?")
    assert [call["name"] for call in message.tool_calls] == ["get_weather"]  # type: ignore[attr-defined]
    assert isinstance(message.tool_calls[0]["args"]["city"], str)  # type: ignore[attr-defined]
    chunks = list(llm.stream("I live in Paris. What is the weather like?"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk  # type: ignore[assignment]
    assert [call["name"] for call in whole.tool_calls] == ["get_weather"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output_returns_the_model(gateway_url: str, method: str) -> None:
    user = _user()
    llm = _langchain(gateway_url, user).with_structured_output(Dish, method=method)  # type: ignore[arg-type]
    dish = llm.invoke("I am vegan and short on time. Suggest a dish.")
    assert isinstance(dish, Dish) and dish.name
    assert _stored(gateway_url, user)["version"] >= 1  # the profile block came first


async def test_open_webuis_request_with_its_built_in_tools_streams_and_remembers(
    gateway_url: str,
) -> None:
    body = json.loads(OPEN_WEBUI.read_text())["body"]
    user = _user()
    body.update(user=user, max_tokens=24, seed=1)
    assert len(body["tools"]) == 28
    async with (
        httpx.AsyncClient(timeout=600) as http,
        http.stream(
            "POST", f"{gateway_url}/v1/chat/completions", json=body, headers=AUTH
        ) as response,
    ):
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all("error" not in chunk for chunk in chunks)
    finish = [c["finish_reason"] for chunk in chunks for c in chunk["choices"]][-1]
    assert finish in ("stop", "length", "tool_calls")
    assert _stored(gateway_url, user)["version"] >= 1  # "a nurse in Seattle who loves hiking"
