"""RLPA_TRAIT_WORDS=said on the real embedded model: what a turn stores is made of what the user
said, so small talk stores nothing and nothing is stored that nobody said."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server import rlpa
from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.rlpa.grammar import COMMON_WORDS
from server.settings import Settings
from tests.fixtures.app import auth, running

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
async def http(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(db="postgres", trait_words="said", default_max_tokens=32)
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        yield client


async def _turn(http: httpx.AsyncClient, user: str, *messages: str) -> list[str] | None:
    response = await http.post(
        "/v1/chat/completions",
        json={
            "model": DEFAULT_ADAPTED_MODEL_NAME,
            "user": user,
            "temperature": 0,
            "messages": [{"role": "user", "content": m} for m in messages],
        },
        timeout=300,
    )
    assert response.status_code == 200, response.text
    stored = await http.get(f"/admin/users/{user}/profile")
    return stored.json()["traits"] if stored.status_code == 200 else None


async def test_small_talk_stores_nothing(http: httpx.AsyncClient) -> None:
    user = f"said-{uuid.uuid4().hex[:8]}"
    assert await _turn(http, user, "hey, thanks!") is None


async def test_a_fact_is_stored_in_the_users_words(http: httpx.AsyncClient) -> None:
    user = f"said-{uuid.uuid4().hex[:8]}"
    message = "Morning! I'm a paramedic on night shifts out of Dundee, what could I batch cook?"
    traits = await _turn(http, user, message)
    assert traits, "the shipped adapter stores the job it was told"
    allowed = {w.lower() for w in rlpa.said_words([message])} | set(COMMON_WORDS)
    for trait in traits:
        words = trait.replace(",", " ").split()
        assert {w.lower() for w in words} <= allowed, trait
