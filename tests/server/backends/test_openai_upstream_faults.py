"""The `openai` backend's routing, retries and error mapping, against scripted upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from server.backends.base import STOP, Finish, SamplingParams, TextDelta
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.errors import BadRequestError, UpstreamError
from tests.fixtures.models import collect
from tests.fixtures.upstreams import ScriptedUpstream, upstream_settings

HI = [{"role": "user", "content": "hi"}]
Make = Callable[..., OpenAIUpstreamBackend]


@pytest.fixture
async def make_backend() -> AsyncIterator[Make]:
    made: list[OpenAIUpstreamBackend] = []

    def make(*urls: str, **overrides: Any) -> OpenAIUpstreamBackend:
        overrides.setdefault("upstream_read_timeout_s", 0.5)
        made.append(OpenAIUpstreamBackend(upstream_settings(list(urls), **overrides)))
        return made[-1]

    yield make
    for backend in made:
        await backend.aclose()


def run(backend: OpenAIUpstreamBackend, params: SamplingParams | None = None) -> Any:
    return collect(backend.stream("scripted", HI, params or SamplingParams(max_tokens=8)))


async def test_streams_deltas_and_the_upstreams_usage(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    text, finish = await run(make_backend(upstream_a.url))
    assert text == "tok0 tok1 tok2 "
    assert (finish.reason, finish.prompt_tokens, finish.completion_tokens) == ("stop", 7, 3)


async def test_missing_usage_counts_the_deltas(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.usage = False
    upstream_a.script.chunks = 5
    _, finish = await run(make_backend(upstream_a.url))
    assert finish.completion_tokens == 5
    assert finish.prompt_tokens > 0


async def test_passes_sampling_params_and_extras_through(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    params = SamplingParams(
        max_tokens=9, temperature=0.3, top_p=0.8, stop=["x"], seed=4, presence_penalty=0.1,
        extra={"top_k": 3, "response_format": {"type": "json_object"}, "stream": False},
    )  # fmt: skip
    await run(make_backend(upstream_a.url, model="served-upstream-id"), params)
    body = upstream_a.bodies[0]
    assert body["model"] == "served-upstream-id"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    expected = {"max_tokens": 9, "temperature": 0.3, "top_p": 0.8, "stop": ["x"], "seed": 4}
    assert {key: body[key] for key in expected} == expected
    assert (body["presence_penalty"], body["top_k"]) == (0.1, 3)
    assert body["response_format"] == {"type": "json_object"}
    assert "frequency_penalty" not in body


async def test_refused_everywhere_is_unavailable(make_backend: Make, refusing_url: str) -> None:
    backend = make_backend(refusing_url)
    with pytest.raises(UpstreamError) as raised:
        await run(backend)
    assert raised.value.status_code == 503
    assert not await backend.health()


async def test_refusing_upstream_is_skipped(
    make_backend: Make, refusing_url: str, upstream_a: ScriptedUpstream
) -> None:
    backend = make_backend(refusing_url, upstream_a.url)
    for _ in range(3):
        text, _ = await run(backend)
        assert text == "tok0 tok1 tok2 "
    assert len(upstream_a.bodies) == 3
    assert await backend.health()


async def test_death_mid_stream_is_a_bad_gateway_after_deltas(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.die_after = 2
    seen: list[str] = []
    with pytest.raises(UpstreamError) as raised:
        async for event in make_backend(upstream_a.url).stream("scripted", HI, SamplingParams()):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
    assert raised.value.status_code == 502
    assert seen == ["tok0 ", "tok1 "]
    assert len(upstream_a.bodies) == 1  # never retried once streaming began


async def test_no_answer_in_time_is_a_timeout_without_retry(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.stall_s = 2.0
    with pytest.raises(UpstreamError) as raised:
        await run(make_backend(upstream_a.url))
    assert raised.value.status_code == 504
    assert len(upstream_a.bodies) == 1


async def test_stall_mid_stream_is_a_timeout(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.stall_s, upstream_a.script.stall_at = 2.0, 1
    with pytest.raises(UpstreamError) as raised:
        await run(make_backend(upstream_a.url))
    assert raised.value.status_code == 504


async def test_server_error_is_retried_then_a_bad_gateway(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.status = 500
    with pytest.raises(UpstreamError) as raised:
        await run(make_backend(upstream_a.url, upstream_retries=2))
    assert raised.value.status_code == 502
    assert len(upstream_a.bodies) == 3


async def test_retry_goes_to_another_upstream(
    make_backend: Make, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    upstream_a.script.status = upstream_b.script.status = 503
    backend = make_backend(upstream_a.url, upstream_b.url, upstream_retries=1)
    with pytest.raises(UpstreamError):
        await run(backend)
    assert (len(upstream_a.bodies), len(upstream_b.bodies)) == (1, 1)


async def test_client_error_is_a_bad_request_with_the_upstreams_message(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.status = 400
    upstream_a.script.error = {  # vLLM's error shape
        "object": "error", "message": "top_k must be -1 or at least 1, got -7.",
        "type": "BadRequestError", "param": "top_k", "code": 400,
    }  # fmt: skip
    with pytest.raises(BadRequestError) as raised:
        await run(make_backend(upstream_a.url))
    assert raised.value.message == "top_k must be -1 or at least 1, got -7."
    assert raised.value.param == "top_k"
    assert len(upstream_a.bodies) == 1


async def test_concurrent_requests_spread_over_upstreams(
    make_backend: Make, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    for upstream in (upstream_a, upstream_b):
        upstream.script.delay_s = 0.05
    backend = make_backend(upstream_a.url, upstream_b.url)
    await asyncio.gather(*(run(backend) for _ in range(4)))
    assert (len(upstream_a.bodies), len(upstream_b.bodies)) == (2, 2)
    assert upstream_a.max_in_flight == upstream_b.max_in_flight == 2


async def test_idle_upstream_takes_requests_from_a_busy_one(
    make_backend: Make, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    backend = make_backend(upstream_a.url, upstream_b.url)
    upstream_a.script.chunks = upstream_b.script.chunks = 40
    upstream_a.script.delay_s = upstream_b.script.delay_s = 0.05
    long = backend.stream("scripted", HI, SamplingParams())
    await anext(long)  # the busy upstream has begun its 40 deltas
    busy, idle = (upstream_a, upstream_b) if upstream_a.in_flight else (upstream_b, upstream_a)
    busy.script.chunks = idle.script.chunks = 1
    for _ in range(3):
        await run(backend)
    assert (len(busy.bodies), len(idle.bodies)) == (1, 3)
    await long.aclose()  # type: ignore[attr-defined]


async def test_closing_early_disconnects_the_upstream(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.chunks, upstream_a.script.delay_s = 50, 0.05
    backend = make_backend(upstream_a.url)
    stream = backend.stream("scripted", HI, SamplingParams())
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(100):
        if upstream_a.disconnects:
            break
        await asyncio.sleep(0.02)
    assert upstream_a.disconnects == 1
    assert upstream_a.completed == 0
    assert backend.pool.upstreams[0].in_flight == 0


async def test_stop_ends_the_upstreams_generation_and_answers_with_a_finish(
    make_backend: Make, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.chunks, upstream_a.script.delay_s = 50, 0.05
    backend = make_backend(upstream_a.url)
    stream = backend.stream("scripted", HI, SamplingParams())
    assert isinstance(await anext(stream), TextDelta)
    assert isinstance(await anext(stream), TextDelta)
    finish = await stream.asend(STOP)
    assert isinstance(finish, Finish)
    # No usage came before the stop: the deltas read are the completion, the prompt estimated.
    assert (finish.completion_tokens, finish.prompt_tokens > 0) == (2, True)
    for _ in range(100):
        if upstream_a.disconnects:
            break
        await asyncio.sleep(0.02)
    assert (upstream_a.disconnects, upstream_a.completed) == (1, 0)
    assert backend.pool.upstreams[0].in_flight == 0
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_lists_models_from_a_live_upstream(
    make_backend: Make, refusing_url: str, upstream_a: ScriptedUpstream
) -> None:
    assert await make_backend(refusing_url, upstream_a.url).list_models() == ["scripted"]
    aliased = make_backend(upstream_a.url, served_model_name="rlpa")
    assert await aliased.list_models() == ["rlpa"]
