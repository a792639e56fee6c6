"""/v1/responses for text turns, with the profile read and written as in a chat turn: the
official `openai` client's `responses.create` (whole and streamed) and `responses.stream`, on
the real embedded model (in-process); what it refuses, by name; how input becomes the turn."""

from __future__ import annotations

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
from server.errors import BadRequestError
from server.openai import responses
from server.openai.protocol_responses import ResponsesRequest
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.upstreams import ScriptedUpstream

MODEL = DEFAULT_ADAPTED_MODEL_NAME

Gateway = tuple[httpx.AsyncClient, openai.AsyncOpenAI]


@pytest.fixture
async def gateway(
    make_settings: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> AsyncIterator[Gateway]:
    settings = make_settings(default_max_tokens=8, profile_max_tokens=64)
    async with running(create_app(settings, llamacpp_backend)) as http:
        http.headers.update(auth())
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        yield http, chat


async def _stored(http: httpx.AsyncClient, user: str, traits: list[str]) -> int:
    put = await http.put(f"/admin/users/{quote(user, safe='')}/profile", json={"traits": traits})
    assert put.status_code == 200, put.text
    version: int = put.json()["version"]
    return version


async def _version(http: httpx.AsyncClient, user: str) -> int:
    """The user's stored version (0: none yet); the user must exist."""
    got = await http.get(f"/admin/users/{quote(user, safe='')}/export")
    assert got.status_code == 200, got.text
    return max((v["version"] for v in got.json()["versions"]), default=0)


@pytest.mark.slow
async def test_a_whole_response_is_a_personalised_turn(gateway: Gateway) -> None:
    http, chat = gateway
    user = f"resp-{uuid.uuid4().hex[:8]}"
    await _stored(http, user, ["keeps bees"])
    raw = await chat.responses.with_raw_response.create(
        model=MODEL,
        input="Hi! I am a nurse in Seattle.",
        instructions="Answer in one short sentence.",
        max_output_tokens=8,
        user=user,
        metadata={"topic": "intro"},
        extra_body={"rlpa": {"return_profile": True}},
    )
    response = raw.parse()
    assert response.object == "response" and response.model == MODEL
    assert response.status in ("completed", "incomplete")
    assert response.instructions == "Answer in one short sentence."
    assert response.metadata == {"topic": "intro"}
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text"
    assert response.output_text == message.content[0].text
    assert "<profile>" not in response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    rlpa = (response.model_extra or {})["rlpa"]
    # The turn read the stored profile and wrote to it: what it returns is what is stored now.
    assert "keeps bees" in rlpa["profile"] and rlpa["version"] == await _version(http, user)
    assert rlpa["changed"] == (rlpa["version"] > 1)
    assert raw.headers["X-RLPA-Memory-Changed"] == str(rlpa["changed"]).lower()


@pytest.mark.slow
async def test_a_streamed_response_sends_the_responses_events(gateway: Gateway) -> None:
    http, chat = gateway
    user = f"resp-{uuid.uuid4().hex[:8]}"
    stream = await chat.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "Hello, I play the cello."},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Lovely!"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Any tips?"}]},
        ],
        safety_identifier=user,
        stream=True,
        extra_body={"rlpa": {"return_profile": True}},
    )
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert set(kinds[4:-4]) <= {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == text == events[-4].text  # type: ignore[union-attr]
    rlpa = (final.model_extra or {})["rlpa"]
    assert rlpa["version"] == await _version(http, user)  # safety_identifier named the user


@pytest.mark.slow
async def test_the_clients_stream_helper_assembles_the_response(gateway: Gateway) -> None:
    _, chat = gateway
    # Greedy, with room to end: the SDK's helper wants `response.completed` (an incomplete
    # response ends with `response.incomplete`, as OpenAI's do).
    async with chat.responses.stream(
        model=MODEL, input="Hello!", temperature=0, max_output_tokens=64
    ) as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()
    assert final.output_text == "".join(deltas)
    assert (final.model_extra or {})["rlpa"] is None  # no user: nothing kept, nothing to say


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools"),
        ({"background": True}, "background"),
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]},
            "input.0",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.0.content",
        ),
    ],
)
async def test_what_needs_state_tools_or_non_text_is_refused_by_name(
    gateway: Gateway, options: dict[str, Any], param: str
) -> None:
    _, chat = gateway
    body: dict[str, Any] = {"model": MODEL, "input": "hi"} | options
    with pytest.raises(openai.BadRequestError) as refused:
        await chat.responses.create(**body)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param, error


def test_instructions_and_input_become_the_turns_history() -> None:
    body = ResponsesRequest(
        model="m",
        instructions="Be brief.",
        input=[
            {"type": "message", "role": "developer", "content": "Use metric units."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "How "},
                    {"type": "input_text", "text": "far?"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "5 km."}]},
        ],
        max_output_tokens=9,
        temperature=0.2,
        top_k=5,
        unknown_field=1,
        rlpa={"mode": "off", "return_profile": True},
    )
    turn = responses.turn_request(body, frozenset({"top_k"}), user="ann")
    assert turn.history == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": "How far?"},
        {"role": "assistant", "content": "5 km."},
    ]
    assert (turn.params.max_tokens, turn.params.temperature) == (9, 0.2)
    assert turn.params.extra == {"top_k": 5}  # a backend's own knob; the unknown one is dropped
    assert (turn.user, turn.remember, turn.return_profile, turn.n) == ("ann", False, True, 1)

    plain = responses.turn_request(ResponsesRequest(model="m", input="Hi"), frozenset(), user=None)
    assert plain.history == [{"role": "user", "content": "Hi"}]
    with pytest.raises(BadRequestError):
        responses.turn_request(ResponsesRequest(model="m", input=[]), frozenset(), user=None)


@pytest.mark.slow
async def test_a_stream_that_fails_mid_reply_ends_with_an_error_event(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    """The upstream dies after the block (fault injection: the scripted upstream)."""
    upstream_a.script.texts = ["<profile>\n- has a cat\n</profile>\n\n<response>\n", "Hi", " there"]
    upstream_a.script.die_after = 2
    settings = make_settings(backend="openai", upstream_urls=[upstream_a.url])
    user = f"resp-{uuid.uuid4().hex[:8]}"
    async with running(create_app(settings)) as http:
        http.headers.update(auth())
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        stream = await chat.responses.create(model="scripted", input="hi", user=user, stream=True)
        events = [event async for event in stream]
        assert events[-1].type == "error"
        assert events[-1].code == "bad_gateway" and "dropped" in events[-1].message
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hi"
        # The block was complete before the failure: its change is kept, as in a chat stream.
        profile = await http.get(f"/admin/users/{user}/profile")
        assert profile.json()["traits"] == ["has a cat"]
