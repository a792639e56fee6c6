"""Clients are never told the gateway's internal upstream URLs; the log keeps them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from server.app import create_app
from server.backends.base import SamplingParams
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.errors import UpstreamError
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.models import collect
from tests.fixtures.upstreams import ScriptedUpstream, upstream_settings
from tests.server.security.helpers import chat_body


def _internals(url: str) -> list[str]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return [url, parts.hostname, str(parts.port), "http://", "/v1"]


async def test_a_refused_upstream_is_a_503_that_names_no_url_host_or_port(
    make_settings: Callable[..., Settings],
    refusing_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(backend="openai", upstream_urls=[refusing_url], model="any")
    async with running(create_app(settings)) as client:
        client.headers.update(auth())
        responses = [
            await client.post("/v1/chat/completions", json=chat_body(None, model="any")),
            await client.post(
                "/v1/chat/completions", json=chat_body("u", model="any", stream=True)
            ),
            await client.get("/v1/models"),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["type"] == "upstream_error"
        for internal in _internals(refusing_url):
            assert internal not in response.text
    assert refusing_url in caplog.text  # the operator still learns which upstream failed


@pytest.mark.parametrize("status", [401, 404, 500])
async def test_an_upstream_error_naming_its_url_is_not_relayed(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream, status: int
) -> None:
    upstream_a.script.status = status
    upstream_a.script.error = {"error": {"message": f"{upstream_a.url}/chat/completions: denied"}}
    settings = make_settings(backend="openai", upstream_urls=[upstream_a.url], upstream_retries=0)
    async with running(create_app(settings)) as client:
        response = await client.post("/v1/chat/completions", json=chat_body(None), headers=auth())
    assert response.status_code == 502, response.text
    for internal in _internals(upstream_a.url):
        assert internal not in response.text


async def test_the_backends_own_errors_name_no_upstream(refusing_url: str) -> None:
    """Both ways a refused upstream is reported: a chat attempt, and the model listing."""
    backend = OpenAIUpstreamBackend(upstream_settings([refusing_url], upstream_retries=1))
    hi = [{"role": "user", "content": "hi"}]
    try:
        with pytest.raises(UpstreamError) as streamed:
            await collect(backend.stream("any", hi, SamplingParams(max_tokens=4)))
        with pytest.raises(UpstreamError) as listed:
            await backend.list_models()
    finally:
        await backend.aclose()
    for raised in (streamed, listed):
        assert raised.value.status_code == 503
        assert raised.value.message == "The model upstream is unreachable."
