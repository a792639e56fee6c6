"""Traces of chat turns (server/tracing.py, server/chat/traces.py): the real gateway over the
scripted upstream, its spans caught by the OpenTelemetry SDK's in-memory exporter, and once over
OTLP/HTTP to a collector of the test's own."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from server.app import create_app
from server.chat import traces
from server.settings import Settings
from tests.fixtures.app import pseudonyms_of, running
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
PROFILE_THEN_REPLY = [
    "<profile>\n- drinks green tea\n</profile>\n\n<response>\n",
    "Bonjour",
    " from the gateway.",
    "\n</response>",
]


class Traced:
    def __init__(self, url: str, exporter: InMemorySpanExporter, settings: Settings) -> None:
        self.url = url
        self.exporter = exporter
        self.settings = settings

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=30
        )

    def spans(self, trace_id: str) -> list[ReadableSpan]:
        """The finished spans of one trace, in the order they started."""
        found = [
            span
            for span in self.exporter.get_finished_spans()
            if span.context is not None and span.context.trace_id == int(trace_id, 16)
        ]
        return sorted(found, key=lambda span: span.start_time or 0)


@pytest.fixture(scope="module")
def traced(
    make_settings: Callable[..., Settings], scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream]
) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = make_settings(
        backend="openai",
        upstream_urls=[scripted_pair[0].url],
        upstream_grammar="none",
        upstream_retries=0,
    )
    with serve(create_app(settings, tracer_provider=provider)) as url:
        yield Traced(url, exporter, settings)
    provider.shutdown()


def _traceparent() -> tuple[str, str, str]:
    """A client's trace context: (traceparent header, trace id, its span id)."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _tree(spans: Sequence[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The turn's span and its children in the order they started; nothing else in the trace."""
    roots = [span for span in spans if span.name == traces.TURN]
    assert len(roots) == 1, [span.name for span in spans]
    root = roots[0]
    assert root.context is not None
    children = [span for span in spans if span is not root]
    for child in children:
        assert child.parent is not None and child.parent.span_id == root.context.span_id
    return root, children


async def test_a_turn_is_a_span_with_the_read_the_model_call_and_the_write_under_it(
    traced: Traced, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.texts = PROFILE_THEN_REPLY
    user = f"traced-{uuid.uuid4().hex[:8]}"
    traceparent, trace_id, client_span = _traceparent()
    async with traced.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="scripted",
            messages=[{"role": "user", "content": "hi"}],
            user=user,
            extra_headers={"traceparent": traceparent},
        )
    assert raw.parse().choices[0].message.content == "Bonjour from the gateway."

    root, children = _tree(traced.spans(trace_id))
    assert [span.name for span in children] == [traces.READ, traces.MODEL, traces.WRITE]
    # The turn continues the client's trace.
    assert root.parent is not None and root.parent.is_remote
    assert root.parent.span_id == int(client_span, 16)
    attributes = dict(root.attributes or {})
    pseudonym = (await pseudonyms_of(traced.settings)).of(user)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "scripted",
        "rlpa.request_id": raw.headers["x-request-id"],
        "rlpa.stream": False,
        "enduser.pseudo.id": pseudonym,
        "rlpa.profile.version_read": 0,
        "rlpa.profile.version_written": 1,
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 4,
        "rlpa.memory_changed": True,
        "rlpa.outcome": "ok",
    }
    assert root.status.status_code == StatusCode.UNSET
    read, call, write = children
    assert dict(read.attributes or {}) == {"rlpa.profile.version_read": 0}
    assert dict(write.attributes or {}) == {"rlpa.profile.version_written": 1}
    assert dict(call.attributes or {}) == {
        "gen_ai.request.model": "scripted",
        "rlpa.choice": 0,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 4,
    }
    # The upstream's request carries the model call's span as its parent.
    assert call.context is not None
    sent = upstream_a.headers[-1]["traceparent"]
    assert sent == f"00-{trace_id}-{call.context.span_id:016x}-01"
    # Nothing of the user, the messages or the profile is on any span.
    for span in (root, *children):
        values = json.dumps(dict(span.attributes or {}), default=str)
        assert user not in values and "green tea" not in values and "Bonjour" not in values


async def test_a_streamed_turn_is_traced_the_same_way(
    traced: Traced, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.texts = PROFILE_THEN_REPLY
    traceparent, trace_id, _ = _traceparent()
    async with traced.client() as client:
        stream = await client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "hi"}],
            user=f"streamed-{uuid.uuid4().hex[:8]}",
            stream=True,
            extra_headers={"traceparent": traceparent},
        )
        text = "".join([c.delta.content or "" async for chunk in stream for c in chunk.choices])
    assert text == "Bonjour from the gateway."

    root, children = _tree(traced.spans(trace_id))
    assert [span.name for span in children] == [traces.READ, traces.MODEL, traces.WRITE]
    attributes = root.attributes or {}
    assert attributes["rlpa.stream"] is True
    assert attributes["rlpa.outcome"] == "ok"
    assert attributes["rlpa.profile.version_written"] == 1


async def test_a_turn_without_a_client_trace_starts_its_own(
    traced: Traced, upstream_a: ScriptedUpstream
) -> None:
    """No traceparent: the turn's span is a root, and a turn without a user reads and writes no
    profile (no such spans)."""
    request_id = str(uuid.uuid4())
    headers = {**HEADERS, "X-Request-Id": request_id}
    body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{traced.url}/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    [root] = [
        span
        for span in traced.exporter.get_finished_spans()
        if (span.attributes or {}).get("rlpa.request_id") == request_id
    ]
    assert root.parent is None
    assert root.context is not None
    trace = traced.spans(f"{root.context.trace_id:032x}")
    assert [span.name for span in trace] == [traces.TURN, traces.MODEL]
    assert "enduser.pseudo.id" not in (root.attributes or {})


async def test_a_failed_upstream_marks_the_turn_and_its_model_call_as_errors(
    traced: Traced, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.status = 500
    traceparent, trace_id, _ = _traceparent()
    body = {"model": "scripted", "user": "u1", "messages": [{"role": "user", "content": "hi"}]}
    headers = {**HEADERS, "traceparent": traceparent}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{traced.url}/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 502, answer.text

    root, children = _tree(traced.spans(trace_id))
    assert [span.name for span in children] == [traces.READ, traces.MODEL]
    for span in (root, children[1]):
        assert span.status.status_code == StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
        assert (span.attributes or {})["error.type"] == "UpstreamError"
    assert (root.attributes or {})["rlpa.outcome"] == "error"
    assert children[0].status.status_code == StatusCode.UNSET  # the read went well


async def test_an_upstream_dying_mid_stream_is_an_error_after_the_write(
    traced: Traced, upstream_a: ScriptedUpstream
) -> None:
    """The stream's status was 200, but it ended with an error event: the turn's span says
    error, and the block completed before the upstream died was still written."""
    upstream_a.script.texts = PROFILE_THEN_REPLY
    upstream_a.script.die_after = 2
    traceparent, trace_id, _ = _traceparent()
    body = {
        "model": "scripted",
        "user": f"dies-{uuid.uuid4().hex[:8]}",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {**HEADERS, "traceparent": traceparent}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream(
            "POST", f"{traced.url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert "error" in json.loads(lines[-2][len("data: ") :])

    root, children = _tree(traced.spans(trace_id))
    assert [span.name for span in children] == [traces.READ, traces.MODEL, traces.WRITE]
    _, call, write = children
    assert root.status.status_code == call.status.status_code == StatusCode.ERROR
    assert write.status.status_code == StatusCode.UNSET
    assert (root.attributes or {})["rlpa.outcome"] == "error"
    assert (write.attributes or {})["rlpa.profile.version_written"] == 1


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector: keeps each export's body."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        if self.path == "/v1/traces":
            self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_spans_reach_the_collector_at_the_otlp_endpoint(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    """RLPA_OTLP_ENDPOINT alone: the gateway exports over OTLP/HTTP, under its service name,
    and its shutdown sends what is still batched."""
    upstream_a.script.texts = PROFILE_THEN_REPLY
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    settings = make_settings(
        backend="openai",
        upstream_urls=[upstream_a.url],
        upstream_grammar="none",
        otlp_endpoint=f"http://127.0.0.1:{collector.server_address[1]}",
        otlp_service_name="rlpa-under-test",
    )
    body = {"model": "scripted", "user": "u2", "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with running(create_app(settings)) as http_client:
            answer = await http_client.post("/v1/chat/completions", json=body, headers=HEADERS)
            assert answer.status_code == 200, answer.text
    finally:
        collector.shutdown()
    names, services = [], set()
    for payload in _Collector.received:
        export = ExportTraceServiceRequest.FromString(payload)
        for resource_spans in export.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names += [span.name for span in scope_spans.spans]
    assert sorted(names) == sorted([traces.TURN, traces.READ, traces.MODEL, traces.WRITE])
    assert services == {"rlpa-under-test"}
