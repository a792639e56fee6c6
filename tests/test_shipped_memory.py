"""What a new user of the embedded default sees: the README's first message is remembered on the
first turn, and a new conversation keeps it. The real shipped model, through the real gateway."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.gateway import MODEL

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
README_MESSAGE = "Hi! I am a nurse in Seattle and I love hiking."  # the README's curl, as written
FACTS = ("nurse", "seattle", "hik")
SEEDS = range(5)


def _say(url: str, user: str, text: str, seed: int) -> str:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers=HEADERS,
        json={
            "model": MODEL,
            "user": user,
            "seed": seed,  # the server's default sampling, made repeatable
            "messages": [{"role": "user", "content": text}],
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    reply: str = response.json()["choices"][0]["message"]["content"]
    return reply


def _profile(url: str, user: str) -> list[str]:
    response = httpx.get(f"{url}/admin/users/{quote(user, safe='')}/profile", headers=HEADERS)
    if response.status_code == 404:
        return []
    traits: list[str] = response.json()["traits"]
    return traits


@pytest.mark.parametrize("seed", SEEDS)
def test_the_readme_message_is_stored_on_turn_one_and_kept_by_a_new_conversation(
    gateway_url: str, seed: int
) -> None:
    user = f"readme-{uuid.uuid4().hex[:8]}"
    _say(gateway_url, user, README_MESSAGE, seed)
    first = _profile(gateway_url, user)
    text = " ".join(first).lower()
    assert all(fact in text for fact in FACTS), first
    # Each stored trait is one statement: nothing of the reply ran into it.
    assert not any("?" in trait for trait in first), first

    _say(gateway_url, user, "hi again, what should I do this evening?", seed)
    second = _profile(gateway_url, user)
    assert set(first) <= set(second), "a new conversation must keep what the first one taught"
