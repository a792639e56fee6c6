"""/v1/completions and /v1/embeddings: relayed as sent to an upstream that serves them (llama.cpp's
OpenAI server), without the profile; a 404 in OpenAI's shape from the embedded backend or an
upstream that does not serve them. Through the official `openai` client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from server.app import create_app
from server.backends.llamacpp import LlamaCppBackend
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.models import SMOLLM2_EMBEDDING
from tests.fixtures.upstreams import LlamaServer, ScriptedUpstream

pytestmark = pytest.mark.slow

SERVED = "smol-upstream"  # RLPA_SERVED_MODEL_NAME: the upstream's own id is a file path


@pytest.fixture(scope="module")
def llama_gateway(
    make_settings: Callable[..., Settings], llama_embedding_server: LlamaServer
) -> Iterator[str]:
    settings = make_settings(
        backend="openai",
        upstream_urls=[llama_embedding_server.url],
        upstream_api_key=llama_embedding_server.api_key,
        served_model_name=SERVED,
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(llama_gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{llama_gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=60
    ) as c:
        yield c


def _known(gateway: str, user: str) -> bool:
    response = httpx.get(
        f"{gateway}/admin/users/{quote(user, safe='')}/export", headers=auth(), timeout=10
    )
    return response.status_code == 200


async def test_a_completion_is_relayed_whole_and_streamed_without_the_profile(
    client: openai.AsyncOpenAI, llama_gateway: str
) -> None:
    user = f"pt-{uuid.uuid4().hex[:8]}"
    whole = await client.completions.create(
        model=SERVED, prompt="The capital of France is", max_tokens=8, seed=3, user=user
    )
    assert whole.object == "text_completion" and whole.model == SERVED
    assert whole.choices[0].text and whole.usage is not None and whole.usage.completion_tokens
    assert "<profile>" not in whole.choices[0].text

    chunks = [
        chunk
        async for chunk in await client.completions.create(
            model=SERVED, prompt="One, two, three,", max_tokens=8, stream=True, user=user
        )
    ]
    assert chunks and {chunk.model for chunk in chunks} == {SERVED}
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert not _known(llama_gateway, user)  # a relayed request reads and stores no profile
    # The memory-off id (docs/clients.md) is relayed as its model, under the id asked for.
    off = await client.completions.create(
        model=f"{SERVED}-nomemory", prompt="One, two,", max_tokens=4, user=user
    )
    assert off.model == f"{SERVED}-nomemory" and off.choices[0].text


async def test_embeddings_are_relayed(client: openai.AsyncOpenAI) -> None:
    answer = await client.embeddings.create(model=SERVED, input=["hello", "a second text"])
    assert answer.model == SERVED
    assert [item.index for item in answer.data] == [0, 1]
    # As llama.cpp's server answers for a generative model: not pooled, one vector per token.
    vectors: list[Any] = [vector for item in answer.data for vector in item.embedding]
    assert len(vectors) > 2 and {len(vector) for vector in vectors} == {SMOLLM2_EMBEDDING}


async def test_an_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    assert missing.value.code == "model_not_found"


async def test_an_upstream_that_does_not_serve_it_is_a_404_in_openai_shape(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    """The scripted upstream serves chat only (no real server here lacks the routes)."""
    settings = make_settings(backend="openai", upstream_urls=[upstream_a.url])
    async with running(create_app(settings)) as http:
        chat = openai.AsyncOpenAI(
            base_url="http://test/v1", api_key=ADMIN_KEY, max_retries=0, http_client=http
        )
        for stream in (False, True):
            with pytest.raises(openai.NotFoundError) as missing:
                await chat.completions.create(
                    model="scripted", prompt="x", max_tokens=2, stream=stream
                )
            assert missing.value.code == "unsupported_endpoint"
            assert "/v1/completions" in missing.value.message
        with pytest.raises(openai.NotFoundError) as missing:
            await chat.embeddings.create(model="scripted", input="x")
        assert missing.value.code == "unsupported_endpoint"
        assert "/v1/embeddings" in missing.value.message
    assert upstream_a.bodies == []  # nothing reached its chat route


async def test_the_embedded_backend_answers_404_in_openai_shape(
    make_settings: Callable[..., Settings], llamacpp_backend: LlamaCppBackend
) -> None:
    async with running(create_app(make_settings(), llamacpp_backend)) as http:
        http.headers.update(auth())
        for path, body in (
            ("/v1/completions", {"model": "smollm2-135m-rlpa", "prompt": "x"}),
            ("/v1/embeddings", {"model": "smollm2-135m-rlpa", "input": "x"}),
        ):
            response = await http.post(path, json=body)
            assert response.status_code == 404, response.text
            error = response.json()["error"]
            assert error["code"] == "unsupported_endpoint" and error["type"]
            assert "RLPA_BACKEND=openai" in error["message"]
