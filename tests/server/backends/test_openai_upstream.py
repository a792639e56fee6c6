"""The `openai` backend against a real third-party server: llama-cpp-python's OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.backends.base import Finish, SamplingParams, TextDelta
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.errors import UpstreamError
from tests.fixtures.models import collect
from tests.fixtures.upstreams import LlamaServer, upstream_settings

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
async def backend(llama_server: LlamaServer) -> AsyncIterator[OpenAIUpstreamBackend]:
    settings = upstream_settings([llama_server.url], upstream_api_key=llama_server.api_key)
    backend = OpenAIUpstreamBackend(settings)
    await backend.start()
    yield backend
    await backend.aclose()


async def test_streams_text_and_usage(
    backend: OpenAIUpstreamBackend, llama_server: LlamaServer
) -> None:
    params = SamplingParams(max_tokens=8, seed=1)
    *deltas, finish = [event async for event in backend.stream(llama_server.model, HELLO, params)]
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert "".join(delta.text for delta in deltas).strip()  # type: ignore[union-attr]
    assert isinstance(finish, Finish)
    # llama_cpp.server streams no usage: the completion is counted from its one-token deltas,
    # and the prompt is estimated.
    assert (finish.reason, finish.completion_tokens) == ("length", len(deltas)) == ("length", 8)
    assert finish.prompt_tokens > 0


async def test_lists_the_upstream_model(
    backend: OpenAIUpstreamBackend, llama_server: LlamaServer
) -> None:
    assert await backend.list_models() == [llama_server.model]
    assert await backend.health()


async def test_sampling_params_reach_the_upstream(
    backend: OpenAIUpstreamBackend, llama_server: LlamaServer
) -> None:
    params = SamplingParams(max_tokens=12, temperature=0.9, seed=42, extra={"top_k": 5})
    first, _ = await collect(backend.stream(llama_server.model, HELLO, params))
    second, _ = await collect(backend.stream(llama_server.model, HELLO, params))
    assert first == second  # the seed got there


async def test_stop_strings_reach_the_upstream(
    backend: OpenAIUpstreamBackend, llama_server: LlamaServer
) -> None:
    free, _ = await collect(backend.stream(llama_server.model, HELLO, SamplingParams(16, seed=2)))
    stop = free[4:7]
    params = SamplingParams(max_tokens=16, seed=2, stop=[stop])
    text, finish = await collect(backend.stream(llama_server.model, HELLO, params))
    assert (text, finish.reason) == (free[: free.index(stop)], "stop")


async def test_bad_parameter_rejected_with_500_is_a_bad_gateway(
    backend: OpenAIUpstreamBackend, llama_server: LlamaServer
) -> None:
    # llama_cpp.server renders request validation errors as HTTP 500 (its RouteErrorHandler
    # wraps them, abetlen/llama-cpp-python#481), so this is a failed upstream to the gateway,
    # not a client error; a 4xx from vLLM becomes BadRequestError (see the scripted tests).
    params = SamplingParams(max_tokens=4, extra={"top_k": "many"})
    with pytest.raises(UpstreamError) as raised:
        await collect(backend.stream(llama_server.model, HELLO, params))
    assert raised.value.status_code == 502


async def test_wrong_upstream_key_is_a_bad_gateway(llama_server: LlamaServer) -> None:
    settings = upstream_settings([llama_server.url], upstream_api_key="not-the-key")
    backend = OpenAIUpstreamBackend(settings)
    try:
        with pytest.raises(UpstreamError) as raised:
            await collect(backend.stream(llama_server.model, HELLO, SamplingParams(4)))
        assert raised.value.status_code == 502
        assert "401" in raised.value.message
    finally:
        await backend.aclose()
