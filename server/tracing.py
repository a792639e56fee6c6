"""Optional OpenTelemetry traces (RLPA_OTLP_ENDPOINT, the `otel` extra): the provider that
exports spans over OTLP/HTTP, and the W3C trace context (`traceparent`) carried from a client's
request to the upstream's.

The chat turn's own spans are the chat domain's (server/chat/traces.py). With no endpoint the app
builds no provider and adds no middleware, and nothing here imports OpenTelemetry: a turn's span
is None and every helper returns at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from server.settings import Settings

SCOPE = "rlpa"  # the instrumentation scope of every span the gateway makes
TRACES_PATH = "/v1/traces"
_CONTEXT_HEADERS = (b"traceparent", b"tracestate")
# The W3C headers of the span that is calling the model, while it opens its request: read by the
# upstream backend as it sends it (server/backends/openai_upstream.py).
_outgoing: ContextVar[dict[str, str] | None] = ContextVar("rlpa_trace_headers", default=None)


def traces_url(endpoint: str) -> str:
    """RLPA_OTLP_ENDPOINT is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is; a URL
    that already names the traces path is taken as it is."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def create_provider(settings: Settings) -> TracerProvider | None:
    """Spans batched to RLPA_OTLP_ENDPOINT over OTLP/HTTP; None (nothing imported) when unset.

    The standard OTEL_* variables still apply: OTEL_EXPORTER_OTLP_HEADERS (a collector's key),
    OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.otlp_service_name})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer(provider: TracerProvider | None) -> Tracer | None:
    return provider.get_tracer(SCOPE) if provider is not None else None


class TraceContextMiddleware:
    """A request's W3C trace context (`traceparent`, `tracestate`) made the current context
    while it is served, so that its turn's span continues the client's trace. Added only when
    tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.app = app
        self.propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {
            str(name, "latin-1"): str(value, "latin-1")
            for name, value in scope.get("headers") or ()
            if name in _CONTEXT_HEADERS
        }
        if "traceparent" not in carrier:  # lifespan, or a request that continues no trace
            await self.app(scope, receive, send)
            return
        from opentelemetry import context

        token = context.attach(self.propagator.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)


@contextmanager
def calling(span: Span | None) -> Iterator[None]:
    """While the model's request is opened on behalf of `span`: its W3C headers go with it. Hold
    it only around code that does not yield (a context variable set in one task step must be
    reset in the same one)."""
    if span is None:
        yield
        return
    from opentelemetry.trace import set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers, set_span_in_context(span))
    token = _outgoing.set(headers)
    try:
        yield
    finally:
        _outgoing.reset(token)


def outgoing_headers() -> dict[str, str]:
    """The trace context a request to the model carries (empty when none is being traced)."""
    return _outgoing.get() or {}
