"""Back-pressure: a request past the embedded model's queue (RLPA_MAX_QUEUE) or past the
replica's upstream in-flight limit (RLPA_UPSTREAM_MAX_INFLIGHT) is refused at once with 503,
Retry-After and OpenAI's error shape, as Ollama refuses past OLLAMA_MAX_QUEUE; the embedded
queue's depth is a gauge on /metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.llamacpp import LlamaCppBackend
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.upstreams import ScriptedUpstream

STORY = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]


async def wait_until(condition: Callable[[], bool], limit_s: float = 30.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit_s, "condition not met in time"
        await asyncio.sleep(0.005)


def chat(model: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "messages": STORY, "max_tokens": max_tokens}


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "server_busy" and "Try again shortly" in error["message"]


async def gauge(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} is not on /metrics"
    return float(found.group(1))


@pytest.mark.slow
async def test_the_embedded_model_refuses_past_its_queue_and_exports_its_depth(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        db="sqlite", redis=False, max_queue=1, n_ctx=1024, profile_max_tokens=16
    )
    app = create_app(settings)
    async with running(app) as client:
        client.headers.update(auth())
        backend = app.state.rlpa.backend
        assert isinstance(backend, LlamaCppBackend)
        model = DEFAULT_ADAPTED_MODEL_NAME
        assert await gauge(client, "rlpa_backend_queue_depth") == 0
        # One request runs, one waits behind it: the queue of one is full.
        running_one = asyncio.create_task(client.post("/v1/chat/completions", json=chat(model, 16)))
        await wait_until(lambda: backend.busy)
        waiting_one = asyncio.create_task(client.post("/v1/chat/completions", json=chat(model, 4)))
        await wait_until(lambda: backend.queue_depth == 1)
        assert await gauge(client, "rlpa_backend_queue_depth") == 1
        refused = await client.post("/v1/chat/completions", json=chat(model, 4))
        assert_busy(refused)
        assert backend.queue_depth == 1 and not running_one.done()

        for accepted in await asyncio.gather(running_one, waiting_one):
            assert accepted.status_code == 200, accepted.text
        assert await gauge(client, "rlpa_backend_queue_depth") == 0
        again = await client.post("/v1/chat/completions", json=chat(model, 4))
        assert again.status_code == 200, again.text


async def test_a_replica_refuses_past_its_upstream_in_flight_limit(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.texts = ["<profile>\n</profile>\n\n<response>\n", "slow", "\n</response>"]
    upstream_a.script.delay_s = 0.5
    settings = make_settings(
        db="sqlite",
        redis=False,
        backend="openai",
        upstream_urls=[upstream_a.url],
        upstream_max_inflight=1,
    )
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        first = asyncio.create_task(client.post("/v1/chat/completions", json=chat("scripted", 8)))
        await wait_until(lambda: upstream_a.in_flight == 1)
        refused = await client.post("/v1/chat/completions", json=chat("scripted", 8))
        assert_busy(refused)
        assert upstream_a.in_flight == 1 and len(upstream_a.bodies) == 1  # never sent upstream
        accepted = await first
        assert accepted.status_code == 200, accepted.text
        upstream_a.script.delay_s = 0.0
        again = await client.post("/v1/chat/completions", json=chat("scripted", 8))
        assert again.status_code == 200, again.text
