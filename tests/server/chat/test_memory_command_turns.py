"""Memory commands through the gateway, on the real embedded model: what the user tells the
memory in chat is done, whatever the model would have written (server/chat/memory_commands.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.settings import Settings
from tests.fixtures.app import auth, running

pytest.importorskip("llama_cpp")

TRAITS = ["is a nurse in Seattle", "has two kids, Tomás and Ana", "has £40,000 in an ISA"]


@pytest.fixture(scope="module")
async def http(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(db="postgres", default_max_tokens=24)
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        yield client


async def _user(http: httpx.AsyncClient, traits: list[str] = TRAITS) -> str:
    user = f"mem-{uuid.uuid4().hex[:8]}"
    put = await http.put(f"/admin/users/{user}/profile", json={"traits": traits})
    assert put.status_code == 200, put.text
    return user


async def _chat(http: httpx.AsyncClient, user: str, *messages: str, **extra: Any) -> httpx.Response:
    roles = ["user", "assistant"]
    response = await http.post(
        "/v1/chat/completions",
        json={
            "model": DEFAULT_ADAPTED_MODEL_NAME,
            "user": user,
            "temperature": 0,
            "messages": [{"role": roles[i % 2], "content": m} for i, m in enumerate(messages)],
            **extra,
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text
    return response


async def _profile(http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await http.get(f"/admin/users/{user}/profile")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_what_do_you_remember_lists_the_stored_profile(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    response = await _chat(http, user, "What do you remember about me?")
    reply = response.json()["choices"][0]["message"]["content"]
    assert all(trait[1:] in reply for trait in TRAITS), reply
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    assert (await _profile(http, user))["version"] == 1  # asking changed nothing


async def test_streamed_recall_arrives_as_chunks(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    async with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": DEFAULT_ADAPTED_MODEL_NAME,
            "user": user,
            "stream": True,
            "messages": [{"role": "user", "content": "what do you know about me so far?"}],
        },
        timeout=300,
    ) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "a nurse in Seattle" in text


async def test_forget_everything_empties_the_profile(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    response = await _chat(http, user, "Please forget everything you know about me.")
    assert "forgotten everything" in response.json()["choices"][0]["message"]["content"]
    profile = await _profile(http, user)
    assert profile["traits"] == [] and profile["source"] == "user"
    again = await _chat(http, user, "What do you remember about me?")
    assert "anything stored" in again.json()["choices"][0]["message"]["content"]


async def test_forget_that_removes_only_what_it_names(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    response = await _chat(http, user, "Please forget that I have kids, that's private.")
    assert "has two kids" in response.json()["choices"][0]["message"]["content"].lower()
    profile = await _profile(http, user)
    assert profile["traits"] == ["is a nurse in Seattle", "has £40,000 in an ISA"]
    assert profile["source"] == "user"


async def test_strike_that_is_about_the_message_before(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    await _chat(
        http,
        user,
        "I've got about £40,000 sitting in an ISA, is that silly?",
        "Not at all, an ISA is a sensible place for savings.",
        "Strike that number from your records, if you would.",
    )
    assert "has £40,000 in an ISA" not in (await _profile(http, user))["traits"]


async def test_dont_save_this_with_a_question_is_answered_and_nothing_kept(
    http: httpx.AsyncClient,
) -> None:
    """The model answers; whatever its block says, the message leaves nothing stored."""
    user = await _user(http)
    response = await _chat(
        http,
        user,
        "Don't save this: I'm on antidepressants and I sleep badly. Any tips for sleeping?",
    )
    assert response.json()["choices"][0]["message"]["content"].strip()
    profile = await _profile(http, user)
    assert profile["version"] == 1 and profile["traits"] == TRAITS


async def test_commands_off_leave_it_to_the_model(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(db="postgres", default_max_tokens=24, memory_commands=False)
    async with running(create_app(settings)) as http:
        http.headers.update(auth())
        user = await _user(http)
        response = await _chat(http, user, "What do you remember about me?")
    assert "Here is what I remember" not in response.json()["choices"][0]["message"]["content"]


async def test_an_opted_out_user_is_not_read_back(http: httpx.AsyncClient) -> None:
    """Memory off: nothing is read, so nothing is listed, and nothing is forgotten either."""
    user = await _user(http)
    opted = await http.patch(f"/admin/users/{user}", json={"personalization": False})
    assert opted.status_code == 200, opted.text
    response = await _chat(http, user, "What do you remember about me?")
    assert "Tomás" not in response.json()["choices"][0]["message"]["content"]
    await _chat(http, user, "Forget everything about me.")
    assert (await _profile(http, user))["traits"] == TRAITS
