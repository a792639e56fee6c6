"""The RLPA grammar sent to upstreams as their structured-output constraint
(RLPA_UPSTREAM_GRAMMAR): which field each kind of server gets, how `auto` tells them apart, and
a real llama-cpp-python server on the bare base model keeping the format on every turn."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from server import rlpa
from server.app import create_app
from server.backends.base import SamplingParams
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.models import collect
from tests.fixtures.upstreams import LlamaServer, ScriptedUpstream, upstream_settings

HI = [{"role": "user", "content": "hi"}]
RLPA_TURN = SamplingParams(max_tokens=8, rlpa_format=True)
CONSTRAINT_FIELDS = ("structured_outputs", "guided_grammar", "grammar")
Make = Callable[..., OpenAIUpstreamBackend]


@pytest.fixture
async def make_backend() -> AsyncIterator[Make]:
    made: list[OpenAIUpstreamBackend] = []

    def make(url: str, **overrides: Any) -> OpenAIUpstreamBackend:
        made.append(OpenAIUpstreamBackend(upstream_settings([url], **overrides)))
        return made[-1]

    yield make
    for backend in made:
        await backend.aclose()


async def _constraint(backend: OpenAIUpstreamBackend, upstream: ScriptedUpstream) -> Any:
    """The constraint fields of the chat request one RLPA turn sent upstream."""
    await collect(backend.stream("scripted", HI, RLPA_TURN))
    body = upstream.bodies[-1]
    return {name: body[name] for name in CONSTRAINT_FIELDS if name in body}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("vllm", {"structured_outputs": {"grammar": rlpa.FORMAT_GBNF}}),
        ("vllm-guided", {"guided_grammar": rlpa.FORMAT_GBNF}),
        ("llamacpp", {"grammar": rlpa.FORMAT_GBNF}),
        ("none", {}),
    ],
)
async def test_each_setting_sends_the_grammar_in_its_field(
    make_backend: Make, upstream_a: ScriptedUpstream, setting: str, expected: dict[str, Any]
) -> None:
    backend = make_backend(upstream_a.url, upstream_grammar=setting)
    assert await _constraint(backend, upstream_a) == expected


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ("0.12.0", "structured_outputs"),
        ("0.14.1+cu129", "structured_outputs"),
        (None, "structured_outputs"),  # no /version: the current field
        ("0.11.2", "guided_grammar"),
        ("0.6.4.post1", "guided_grammar"),
    ],
)
async def test_auto_finds_vllm_and_its_field_by_version(
    make_backend: Make, upstream_a: ScriptedUpstream, version: str | None, field: str
) -> None:
    upstream_a.owned_by, upstream_a.version = "vllm", version
    backend = make_backend(upstream_a.url)  # RLPA_UPSTREAM_GRAMMAR defaults to auto
    assert list(await _constraint(backend, upstream_a)) == [field]


async def test_auto_finds_llama_cpp_server_by_its_model_owner(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.owned_by = "llamacpp"
    backend = make_backend(upstream_a.url)
    assert await _constraint(backend, upstream_a) == {"grammar": rlpa.FORMAT_GBNF}


async def test_auto_asks_once_and_again_after_the_upstream_went_down(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.owned_by = "vllm"
    backend = make_backend(upstream_a.url)
    assert list(await _constraint(backend, upstream_a)) == ["structured_outputs"]
    upstream_a.owned_by = "llamacpp"  # not asked again: the answer is kept
    assert list(await _constraint(backend, upstream_a)) == ["structured_outputs"]
    backend.pool.mark_down(backend.pool.upstreams[0])  # maybe another server when it is back
    assert list(await _constraint(backend, upstream_a)) == ["grammar"]


async def test_auto_leaves_an_unknown_upstream_unconstrained_and_says_so(
    make_backend: Make, upstream_a: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    backend = make_backend(upstream_a.url)
    with caplog.at_level(logging.WARNING, logger="server.backends.openai_upstream"):
        assert await _constraint(backend, upstream_a) == {}
        assert await _constraint(backend, upstream_a) == {}
    warnings = [r for r in caplog.records if "not constrained to the RLPA format" in r.message]
    assert len(warnings) == 1


async def test_a_turn_without_the_rlpa_format_is_not_constrained(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    backend = make_backend(upstream_a.url, upstream_grammar="vllm")
    await collect(backend.stream("scripted", HI, SamplingParams(max_tokens=8)))
    assert not set(CONSTRAINT_FIELDS) & upstream_a.bodies[-1].keys()


async def test_a_clients_own_constraint_wins(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    backend = make_backend(upstream_a.url, upstream_grammar="llamacpp")
    params = SamplingParams(max_tokens=8, rlpa_format=True, extra={"grammar": 'root ::= "x"'})
    await collect(backend.stream("scripted", HI, params))
    assert upstream_a.bodies[-1]["grammar"] == 'root ::= "x"'


@pytest.mark.slow
async def test_auto_finds_llama_cpp_python_server_and_its_output_parses(
    llama_server: LlamaServer,
) -> None:
    settings = upstream_settings([llama_server.url], upstream_api_key=llama_server.api_key)
    backend = OpenAIUpstreamBackend(settings)
    try:
        messages = rlpa.build_messages([{"role": "user", "content": "I'm a nurse."}], None, 2)
        params = SamplingParams(max_tokens=96, seed=3, rlpa_format=True)
        text, _ = await collect(backend.stream(llama_server.model, messages, params))
    finally:
        await backend.aclose()
    assert backend.pool.upstreams[0].dialect == "llamacpp"  # its models are "owned_by": "me"
    assert text.startswith("<profile>\n")
    assert rlpa.parse_output(text).format_ok


CHATS = [
    ["Hi! I'm a nurse in Seattle.", "I work night shifts.", "Any idea for dinner?"],
    ["I just adopted a beagle puppy.", "I live in a small flat in Lyon.", "How do I train him?"],
]


def _format_failures() -> float:
    return REGISTRY.get_sample_value("rlpa_format_failures_total") or 0.0


@pytest.mark.slow
async def test_bare_base_upstream_keeps_the_format_on_every_turn(
    make_settings: Callable[..., Settings], llama_server: LlamaServer
) -> None:
    """The gateway on PostgreSQL + Redis in `openai` mode with the default `auto`, in front of
    a base model never trained on the format (the bench shows it keeps none unconstrained)."""
    settings = make_settings(
        backend="openai",
        upstream_urls=[llama_server.url],
        upstream_api_key=llama_server.api_key,
        default_max_tokens=128,
    )
    failures = _format_failures()
    users = [f"grammar-{uuid.uuid4().hex[:8]}" for _ in CHATS]
    with serve(create_app(settings)) as gateway:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120
        ) as client:
            for user, lines in zip(users, CHATS, strict=True):
                history: list[Any] = []
                for turn, line in enumerate(lines):
                    history.append({"role": "user", "content": line})
                    stream = await client.chat.completions.create(
                        model=llama_server.model, messages=history, user=user, stream=True,
                        seed=turn,
                    )  # fmt: skip
                    reply = "".join(
                        [c.delta.content or "" async for chunk in stream for c in chunk.choices]
                    )
                    assert reply.strip() and "<" not in reply
                    history.append({"role": "assistant", "content": reply})
        versions = [_versions(gateway, user) for user in users]
    assert _format_failures() == failures  # six turns, six parseable profile blocks
    assert sum(versions) >= 1, "no profile block of any turn stored a trait"


def _versions(gateway: str, user: str) -> int:
    response = httpx.get(
        f"{gateway}/admin/users/{quote(user, safe='')}/profile/history",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    response.raise_for_status()
    return len(response.json()["data"])
