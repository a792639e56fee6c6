"""The `openai` backend against a real third-party server: llama-cpp-python's OpenAI server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from server.backends.base import Finish, SamplingParams, TextDelta
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.errors import UpstreamError
from tests.fixtures.live import free_port
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


class RecordingProxy:
    """A pass-through in front of the llama.cpp server that keeps every chat request body it
    forwards: what the upstream received, byte for byte."""

    def __init__(self, target: str) -> None:
        self.target = target.removesuffix("/v1")
        self.bodies: list[dict[str, Any]] = []
        self._client = httpx.AsyncClient(timeout=60)
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
        )
        self.url = f"http://127.0.0.1:{self._server.config.port}/v1"
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        if request.method == "POST":
            self.bodies.append(json.loads(body))
        upstream = await self._client.send(
            self._client.build_request(
                request.method,
                f"{self.target}{request.url.path}",
                content=body,
                headers={
                    name: request.headers[name]
                    for name in ("authorization", "content-type")
                    if name in request.headers
                },
            ),
            stream=True,
        )
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            background=BackgroundTask(upstream.aclose),
        )

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


async def test_sampling_params_reach_the_upstream(llama_server: LlamaServer) -> None:
    params = SamplingParams(
        max_tokens=12, temperature=0.9, top_p=0.95, seed=42, stop=["\n\n\n"], extra={"top_k": 5}
    )
    with RecordingProxy(llama_server.url) as proxy:
        settings = upstream_settings([proxy.url], upstream_api_key=llama_server.api_key)
        backend = OpenAIUpstreamBackend(settings)
        try:
            # llama-cpp-python answers a prompt's first request, evaluated cold, differently from
            # the seeded requests after it (seen with 0.3.x): the comparison starts after one.
            await collect(backend.stream(llama_server.model, HELLO, params))
            first, finish = await collect(backend.stream(llama_server.model, HELLO, params))
            second, _ = await collect(backend.stream(llama_server.model, HELLO, params))
        finally:
            await backend.aclose()
    received = proxy.bodies[-1]
    expected = {
        "model": llama_server.model, "messages": HELLO, "max_tokens": 12, "temperature": 0.9,
        "top_p": 0.95, "seed": 42, "stop": ["\n\n\n"], "top_k": 5, "stream": True,
    }  # fmt: skip
    assert {key: received.get(key) for key in expected} == expected
    assert proxy.bodies[0] == proxy.bodies[1] == received
    # And the server honoured them: the seed makes the replies the same, max_tokens ends them.
    assert first == second
    assert finish.reason == "length"


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
