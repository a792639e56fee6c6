"""Bad input gets a 4xx in OpenAI's error shape, and the keep-alive connection survives it.

Each case is sent to a live gateway (the `openai` backend over the scripted upstream) on one
`httpx.Client`, followed by a good request: a 500 makes uvicorn drop the connection, so the
good request then arrives on a new one, from another local port.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
INT32_MAX = 2**31 - 1


@pytest.fixture(scope="module")
def gateway(
    make_settings: Callable[..., Settings], scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream]
) -> Iterator[str]:
    settings = make_settings(
        backend="openai", upstream_urls=[scripted_pair[0].url], upstream_retries=1
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, headers=HEADERS, timeout=10) as client:
        yield client


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, int]:
    """The response, read whole, and the local port of the connection that carried it."""
    with client.stream(method, url, **kwargs) as response:
        port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        response.read()
    return response, port


def _refused(
    client: httpx.Client, method: str, url: str, param: str | None = None, **kwargs: Any
) -> httpx.Response:
    """Send a bad request; assert a 4xx in OpenAI's shape on a connection that stays usable."""
    bad, port = _send(client, method, url, **kwargs)
    assert 400 <= bad.status_code < 500, bad.text
    error = bad.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    good, next_port = _send(client, "GET", "/admin/keys")
    assert good.status_code == 200
    assert next_port == port, "the bad request closed the keep-alive connection"
    return bad


def _chat(client: httpx.Client, body: dict[str, Any], param: str | None) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \ud800 and writes NaN, which httpx's encoder won't.
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return _refused(client, "POST", "/v1/chat/completions", param, content=raw, headers=headers)


def _nothing_happened(client: httpx.Client, upstream: ScriptedUpstream, user: str) -> None:
    assert upstream.bodies == []
    assert client.get(f"/admin/users/{quote(user, safe='')}/profile").status_code == 404


def _turn(user: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "scripted",
        "user": user,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "user", "content": "a\ud800b"}]}, "messages.0.content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
            "messages.0.content.0.text",
        ),
        ({"messages": [{"role": "user", "content": "hi", "name": "n\ud800"}]}, "messages.0.name"),
        ({"stop": "\ud800"}, "stop"),
        ({"stop": ["ok", "x\udc00"]}, "stop.1"),
        ({"metadata": {"note": "\ud800"}}, "metadata.note"),
        ({"grammar": 'root ::= "\ud800"'}, "grammar"),
    ],
    ids=["content", "content-part", "name", "stop", "stop-list", "extra", "forwarded-extra"],
)
def test_a_lone_surrogate_in_a_chat_request_is_refused(
    http: httpx.Client,
    upstream_a: ScriptedUpstream,
    fields: dict[str, Any],
    param: str,
    stream: bool,
) -> None:
    user = f"surrogate-{uuid.uuid4().hex[:8]}"
    bad = _chat(http, _turn(user, stream=stream, **fields), param)
    assert bad.status_code == 400
    _nothing_happened(http, upstream_a, user)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logit_bias": {"42": math.nan}}, "logit_bias.42"),
        ({"top_k": math.inf}, "top_k"),
        ({"response_format": {"type": "json_object", "x": [-math.inf]}}, "response_format.x.0"),
    ],
    ids=["logit_bias", "forwarded-extra", "nested"],
)
def test_nan_or_infinity_in_a_chat_request_is_refused(
    http: httpx.Client,
    upstream_a: ScriptedUpstream,
    fields: dict[str, Any],
    param: str,
    stream: bool,
) -> None:
    # Python's json module reads NaN and Infinity; the upstream request's encoder refuses them.
    user = f"nan-{uuid.uuid4().hex[:8]}"
    assert _chat(http, _turn(user, stream=stream, **fields), param).status_code == 400
    _nothing_happened(http, upstream_a, user)


def test_a_lone_surrogate_in_the_user_field_is_refused(
    http: httpx.Client, upstream_a: ScriptedUpstream
) -> None:
    assert _chat(http, _turn("user-\ud800"), "user").status_code == 400
    assert upstream_a.bodies == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 2**70}, "max_tokens"),
        ({"max_tokens": INT32_MAX + 1}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": 2**70}, "max_completion_tokens"),
        ({"max_completion_tokens": True}, "max_completion_tokens"),
        ({"seed": 2**70}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"seed": True}, "seed"),
        ({"n": True}, "n"),
        ({"top_logprobs": True}, "top_logprobs"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else str(value),
)
def test_out_of_range_or_boolean_integers_are_refused_before_the_upstream(
    http: httpx.Client, upstream_a: ScriptedUpstream, fields: dict[str, Any], param: str
) -> None:
    user = f"ints-{uuid.uuid4().hex[:8]}"
    assert _chat(http, _turn(user, **fields), param).status_code == 400
    _nothing_happened(http, upstream_a, user)


def test_integers_at_their_bounds_still_reach_the_upstream(
    http: httpx.Client, upstream_a: ScriptedUpstream
) -> None:
    body = _turn(None, max_tokens=INT32_MAX, seed=2**63 - 1, rlpa={"mode": "off"})
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert upstream_a.bodies[-1]["seed"] == 2**63 - 1


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "\x01", "\x1b[2J", "\x7f"])
def test_a_user_search_with_control_characters_is_refused(http: httpx.Client, q: str) -> None:
    assert _refused(http, "GET", "/admin/users", "q", params={"q": q}).status_code == 400


def test_a_cursor_that_decodes_to_control_characters_is_refused(http: httpx.Client) -> None:
    # "AA==" is valid base64 for a NUL byte, which PostgreSQL cannot compare against text.
    response = _refused(http, "GET", "/admin/users?cursor=AA%3D%3D", "cursor")
    assert response.status_code == 400


@pytest.mark.parametrize("version", [INT32_MAX + 1, 3_000_000_000, 2**70])
def test_a_rollback_version_beyond_the_column_range_is_refused(
    http: httpx.Client, version: int
) -> None:
    user = f"rollback-{uuid.uuid4().hex[:8]}"
    assert http.put(f"/admin/users/{user}/profile", json={"traits": ["a"]}).status_code == 200
    path = f"/admin/users/{user}/profile/rollback"
    bad = _refused(http, "POST", path, "version", json={"version": version})
    assert bad.status_code == 400


@pytest.mark.parametrize("key_id", [str(INT32_MAX + 1), "3000000000", str(2**70)])
def test_revoking_a_key_id_beyond_the_column_range_is_refused(
    http: httpx.Client, key_id: str
) -> None:
    assert _refused(http, "DELETE", f"/admin/keys/{key_id}").status_code in (400, 404)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "ci\x00"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "\ud800"}, "name"),
        ({"user": "bound\x00", "scopes": ["chat"]}, "user"),
        ({"user": "\ud800", "scopes": ["chat"]}, "user"),
    ],
    ids=["name-nul", "name-newline", "name-surrogate", "user-nul", "user-surrogate"],
)
def test_a_key_with_control_characters_is_refused(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    headers = {"Content-Type": "application/json"}
    raw = json.dumps(body).encode()
    bad = _refused(http, "POST", "/admin/keys", param, content=raw, headers=headers)
    assert bad.status_code == 400


@pytest.mark.parametrize("user", [" ", "   ", "\u3000\u00a0 "])
def test_a_user_id_of_only_spaces_is_refused(
    http: httpx.Client, upstream_a: ScriptedUpstream, user: str
) -> None:
    assert _chat(http, _turn(user), "user").status_code == 400
    assert upstream_a.bodies == []
    _refused(http, "GET", f"/admin/users/{quote(user, safe='')}/profile", "user")
    listed = http.get("/admin/users", params={"limit": 1000}).json()["data"]
    assert all(row["user"].strip() for row in listed)
