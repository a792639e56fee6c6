"""What operators see: Prometheus series after real requests (errors and 429s included), the
request id from client to upstream and back, and one JSON log line per request that names no
secret, message or trait."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import observability
from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, pseudonyms_of, running
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.upstreams import ScriptedUpstream

CHAT = "/v1/chat/completions"
MODEL = "scripted"  # what the scripted upstream serves
LEARNED = ["<profile>\n- drinks green tea\n</profile>\n\n<response>\n", "Hello", "\n</response>"]
EMPTY_BLOCK = ["<profile>\n</profile>\n\n<response>\n", "Hi", "\n</response>"]
GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def gateway(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {"upstream_urls": [upstream_a.url], "upstream_retries": 0, **overrides}
        return make_settings(backend="openai", upstream_grammar="none", **values)

    return make


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in after, f"no sample {name}{labels}"
    return after[key] - before.get(key, 0.0)


def chat_body(user: str, stream: bool = False, model: str = MODEL) -> dict[str, Any]:
    messages = [{"role": "user", "content": "hi there"}]
    return {"model": model, "user": user, "stream": stream, "messages": messages}


async def test_requests_are_counted_by_route_status_and_model_errors_included(
    gateway: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    user = f"obs-{uuid.uuid4().hex[:8]}"
    async with running(create_app(gateway())) as client:
        client.headers.update(auth())
        before = await scrape(client)
        upstream_a.script.texts = LEARNED
        assert (await client.post(CHAT, json=chat_body(user))).status_code == 200
        upstream_a.script.texts = EMPTY_BLOCK
        assert (await client.post(CHAT, json=chat_body(user, stream=True))).status_code == 200
        upstream_a.script.texts = ["no format at all"]
        assert (await client.post(CHAT, json=chat_body(user))).status_code == 200
        assert (await client.post(CHAT, json=chat_body(user, model="nope"))).status_code == 404
        upstream_a.script.texts, upstream_a.script.die_after = ["Hello", " world", "!"], 2
        dying = await client.post(CHAT, json=chat_body(user, stream=True))
        assert (dying.status_code, '"error"' in dying.text) == (
            200,
            True,
        )  # ended by an error event
        upstream_a.script.status = 500
        assert (await client.post(CHAT, json=chat_body(user))).status_code == 502
        assert (await client.get(f"/admin/users/{quote(user)}/profile")).status_code == 200
        assert (await client.get(f"/no/such/{user}")).status_code == 404
        after = await scrape(client)

    def requests(status: str, model: str = MODEL, route: str = CHAT, method: str = "POST") -> float:
        labels = {"route": route, "method": method, "status": status, "model": model}
        return grew(before, after, "rlpa_requests_total", **labels)

    assert requests("200") == 4
    assert requests("404", model="") == 1  # an unknown model never becomes a label
    assert requests("502") == 1
    assert requests("200", "", "/admin/users/{user:path}/profile", "GET") == 1
    assert requests("404", "", "unmatched", "GET") == 1
    assert grew(before, after, "rlpa_chat_requests_total", status="ok") == 3
    assert grew(before, after, "rlpa_chat_requests_total", status="error") == 3
    duration = grew(before, after, "rlpa_request_duration_seconds_count", route=CHAT, method="POST")
    assert duration == 6
    assert grew(before, after, "rlpa_time_to_first_token_seconds_count", model=MODEL) == 2
    assert grew(before, after, "rlpa_prompt_tokens_total", model=MODEL) == 3 * 7
    assert grew(before, after, "rlpa_completion_tokens_total", model=MODEL) == 3 + 3 + 1
    assert grew(before, after, "rlpa_profile_versions_total", source="model") == 1
    assert grew(before, after, "rlpa_profile_blocks_skipped_total", block="empty") == 1
    assert grew(before, after, "rlpa_format_failures_total") == 1
    reads = grew(before, after, "rlpa_cache_hits_total") + grew(
        before, after, "rlpa_cache_misses_total"
    )
    assert reads >= 4
    host = upstream_a.url.removeprefix("http://").removesuffix("/v1")
    for kind in ("status", "stream"):
        assert grew(before, after, "rlpa_upstream_errors_total", upstream=host, kind=kind) == 1
    assert after[("rlpa_upstream_in_flight", frozenset({("upstream", host)}))] == 0
    # Bounded labels: no raw path, and so no end user's id, in any series.
    assert not [key for key in after if any(user in value for _, value in key[1])]


async def test_rate_limited_requests_are_counted(gateway: Callable[..., Settings]) -> None:
    async with running(create_app(gateway(rate_limit_per_minute=1, redis=False))) as client:
        before = await scrape(client)
        statuses = []
        for _ in range(4):  # 1 per minute: the second is refused, unless the minute turns
            response = await client.get("/v1/models", headers=auth())
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        after = await scrape(client)
    assert statuses[-1] == 429
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert grew(before, after, "rlpa_rate_limited_total", reason="api_key") == 1
    labels = {"route": "/v1/models", "method": "GET", "status": "429", "model": ""}
    assert grew(before, after, "rlpa_requests_total", **labels) == 1


async def test_request_id_is_returned_forwarded_upstream_and_stored(
    gateway: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    user = f"rid-{uuid.uuid4().hex[:8]}"
    app = create_app(gateway(max_body_bytes=2000))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    client_uuid = str(uuid.uuid4())
    returned, forwarded = [], []
    async with running(app) as client:
        client.headers.update(auth())
        # Each turn learns a fact, so each writes a version stamped with its request id.
        for index, given in enumerate((client_uuid, "client-id-42", None)):
            block = f"<profile>\n- fact {index}\n</profile>\n\n<response>\n"
            upstream_a.script.texts = [block, "ok", "\n</response>"]
            headers = {"X-Request-Id": given} if given else {}
            response = await client.post(CHAT, json=chat_body(user), headers=headers)
            assert response.status_code == 200
            returned.append(response.headers["x-request-id"])
            forwarded.append(upstream_a.headers[-1].get("x-request-id"))
        assert returned[:2] == [client_uuid, "client-id-42"]
        assert GENERATED_ID.fullmatch(returned[2])
        # Upstream only a UUID: llama-cpp-python's server refuses any other X-Request-Id.
        assert forwarded == [client_uuid, None, returned[2]]
        export = (await client.get(f"/admin/users/{quote(user)}/export")).json()
        versions = sorted(export["versions"], key=lambda version: version["version"])
        assert [version["request_id"] for version in versions] == returned

        headers = {"X-Request-Id": "client-id-42"}

        for unsafe in ("has space", "x" * 129, "", "new\\nline"):
            response = await client.get("/health", headers={"X-Request-Id": unsafe})
            assert GENERATED_ID.fullmatch(response.headers["x-request-id"]), unsafe

        wrong_key = {**headers, **auth("wrong-key-0123456789")}
        errors = [
            (401, await client.get("/v1/models", headers=wrong_key)),
            (404, await client.get("/nowhere", headers=headers)),
            (400, await client.post(CHAT, json={"model": MODEL}, headers=headers)),
            (413, await client.post(CHAT, content=b"x" * 3000, headers=headers)),
        ]
        for status, response in errors:
            assert response.status_code == status
            assert response.headers.get("x-request-id") == "client-id-42"
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as raw:
            response = await raw.get("/boom", headers=headers)
        assert (response.status_code, response.headers.get("x-request-id")) == (500, "client-id-42")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What `rlpa serve` would print with RLPA_LOG_FORMAT=json, at info level."""
    out = io.StringIO()
    handler = observability.log_handler("json", out)
    logger = logging.getLogger("server")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_one_json_line_per_request_without_secrets_messages_or_traits(
    gateway: Callable[..., Settings], upstream_a: ScriptedUpstream, log_lines: io.StringIO
) -> None:
    user = f"log-{uuid.uuid4().hex[:8]}"
    message = "I collect vintage tram tickets from Lisbon"
    learned, edited = "collects vintage tram tickets", "keeps bees on the roof"
    wrong_key = "rlpa-wrong-secret-key-9f8e7d6c5b4a"
    upstream_a.script.texts = [f"<profile>\n- {learned}\n</profile>\n\n<response>\n", "Nice!"]
    upstream_a.script.texts.append("\n</response>")
    settings = gateway()
    async with running(create_app(settings)) as client:
        body = {**chat_body(user), "messages": [{"role": "user", "content": message}]}
        chat = await client.post(CHAT, json=body, headers=auth())
        put = await client.put(
            f"/admin/users/{quote(user)}/profile", json={"traits": [edited]}, headers=auth()
        )
        denied = await client.get("/v1/models", headers=auth(wrong_key))
    assert (chat.status_code, put.status_code, denied.status_code) == (200, 200, 401)

    pseudonyms = await pseudonyms_of(settings)
    text = log_lines.getvalue()
    for secret in (ADMIN_KEY, wrong_key, message, learned, edited, user):
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    access = {e["request_id"]: e for e in entries if e["logger"] == "server.access"}
    assert len(access) == 3  # one line per request
    expected = [
        (chat, {"route": CHAT, "status": 200, "model": MODEL, "outcome": "ok"}),
        (put, {"route": "/admin/users/{user:path}/profile", "method": "PUT", "status": 200}),
        (denied, {"route": "/v1/models", "status": 401, "key_id": None, "tenant": None}),
    ]
    for response, fields in expected:
        line = access[response.headers["x-request-id"]]
        assert fields.items() <= line.items()
        assert {"ts", "level", "latency_ms", "key_id", "tenant", "user_hash"} <= line.keys()
        assert line["level"] == "info" and line["latency_ms"] >= 0
    for response in (chat, put):
        line = access[response.headers["x-request-id"]]
        assert line["user_hash"] == pseudonyms.of(user)
        assert isinstance(line["key_id"], int) and line["tenant"] == "default"
