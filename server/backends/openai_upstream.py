"""The production backend: any OpenAI-compatible server (vLLM; llama.cpp's server and Ollama too).

Lifecycle (the app's lifespan does this through `create_backend`): construct, `await start()`
(nothing to load; the upstreams may come up later), `await aclose()` (closes the HTTP client).

Each request goes to the least-busy healthy upstream and is retried, on another upstream where
there is one, only while no byte of the response body has reached us: after that the client may
already have seen text. Closing the stream early closes the upstream connection, which is how
vLLM and llama.cpp learn that the client left and stop generating.

Model ids: RLPA_SERVED_MODEL_NAME, when set, is the one id clients see; otherwise they see the
upstream's ids. RLPA_MODEL, when set, is the id sent upstream; otherwise the client's id goes.

The format: a turn that asks for the RLPA format carries the RLPA grammar (server.rlpa.grammar, the
GBNF the embedded backend decodes with) in the field the upstream takes it in. vLLM's xgrammar
reads GBNF as it is; llama.cpp's server and llama-cpp-python's take it as `grammar`. With
RLPA_UPSTREAM_GRAMMAR=auto each upstream is asked once what it is (`_identify`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx

from server import metrics, observability, rlpa, tracing
from server.backends.base import STOP, BackendStream, Finish, RelayEndpoint, SamplingParams
from server.backends.sse import parse_chat_stream, parse_event_stream, upstream_error_detail
from server.backends.upstream_http import (
    UpstreamHTTP,
    UpstreamResponse,
    behind_proxy,
    encode_json,
)
from server.backends.upstream_pool import GrammarDialect, Upstream, UpstreamPool
from server.errors import BackendBusyError, BadRequestError, NotFoundError, UpstreamError
from server.settings import Settings

logger = logging.getLogger(__name__)

COOLDOWN_S = 5.0
_BACKOFF_S = 0.05
# OpenAI and vLLM/llama.cpp request fields an upstream can honour, passed through as sent. Which
# OpenAI fields reach a backend at all is decided by server.openai.fields.REQUEST_FIELDS.
_EXTRAS = frozenset(
    {
        "response_format", "logit_bias", "repeat_penalty", "repetition_penalty", "top_k", "min_p",
        "typical_p", "min_tokens", "ignore_eos", "stop_token_ids", "skip_special_tokens",
        "guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs",
        "chat_template_kwargs", "grammar", "mirostat_mode", "mirostat_tau", "mirostat_eta",
        "reasoning_effort", "service_tier",
    }
)  # fmt: skip
# Fields the gateway owns: an extra must not override them.
_OWNED = frozenset({"model", "messages", "stream", "stream_options", "n"})
# A client that sends one of these constrains the output itself, and the client's constraint wins:
# an upstream decodes under one constraint only.
_CLIENT_CONSTRAINTS = frozenset(
    {
        "response_format", "grammar", "guided_grammar", "guided_json", "guided_regex",
        "guided_choice", "structured_outputs",
    }
)  # fmt: skip
# vLLM took grammars as `guided_grammar` until 0.12.0, which removed it for `structured_outputs`
# (docs.vllm.ai, features/structured_outputs); a field vLLM does not know is ignored, not refused.
_VLLM_STRUCTURED_OUTPUTS = (0, 12)
# What clients are told when no upstream could be reached: upstream URLs are internal and stay in
# the gateway's log.
_UNREACHABLE = "The model upstream is unreachable."
_CHAT = "chat/completions"


class _RetryableError(UpstreamError):
    """This attempt failed before any response body arrived: another attempt is safe."""


class OpenAIUpstreamBackend:
    def __init__(self, settings: Settings, cooldown_s: float = COOLDOWN_S) -> None:
        self._settings = settings
        self._alias = settings.served_model_name
        self.pool = UpstreamPool(settings.upstream_urls, cooldown_s)
        for upstream in self.pool.upstreams:
            # Read at scrape time: nothing per request.
            metrics.UPSTREAM_IN_FLIGHT.labels(upstream.host).set_function(_in_flight(upstream))
        # First requests to a new upstream arrive together: one of them asks what it is.
        self._identifying = {upstream.url: asyncio.Lock() for upstream in self.pool.upstreams}
        key = settings.upstream_api_key
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {key.get_secret_value()}"} if key else None,
            timeout=httpx.Timeout(
                connect=settings.upstream_connect_timeout_s,
                read=settings.upstream_read_timeout_s,
                write=settings.upstream_connect_timeout_s,
                pool=None,
            ),
            # Concurrency is the upstreams' to queue: a pool limit here would only add a timeout.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        # The chat request itself, on the hot path, skips httpx (see upstream_http) unless the
        # environment routes the upstream through a proxy.
        self._http = UpstreamHTTP(
            {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {},
            connect_timeout=settings.upstream_connect_timeout_s,
            read_timeout=settings.upstream_read_timeout_s,
        )
        self._lean = {up.url: not behind_proxy(up.url) for up in self.pool.upstreams}

    async def start(self) -> None:
        """Nothing to load: upstreams may start after the gateway and are found per request."""

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._http.aclose()

    def supported_extras(self) -> frozenset[str]:
        return _EXTRAS

    async def list_models(self) -> list[str]:
        errors: list[str] = []
        for upstream in self.pool.by_preference():
            try:
                response = await self._client.get(f"{upstream.url}/models")
                response.raise_for_status()
            except httpx.HTTPError as exc:
                self.pool.mark_down(upstream)
                metrics.UPSTREAM_ERRORS.labels(upstream.host, _error_kind(exc)).inc()
                errors.append(f"{upstream.url}: {exc!r}")
                continue
            self.pool.mark_up(upstream)
            if self._alias is not None:
                return [self._alias]
            return [str(item["id"]) for item in response.json().get("data", [])]
        logger.warning("no model upstream answered: %s", "; ".join(errors))
        raise UpstreamError(_UNREACHABLE, status_code=503)

    async def health(self) -> bool:
        try:
            await self.list_models()
        except UpstreamError:
            return False
        return True

    async def stream(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> BackendStream:
        body = self._body(model, messages, params)
        constrain = params.rlpa_format and not _CLIENT_CONSTRAINTS & body.keys()
        grammar = params.grammar or rlpa.FORMAT_GBNF
        response, upstream = await self._open(body, constrain, grammar=grammar)
        finish: Finish | None = None
        try:
            async with aclosing(parse_chat_stream(response, messages)) as events:
                async for event in events:
                    if isinstance(event, Finish):
                        finish = event
                        break
                    if (yield event) is STOP:
                        stopped = await events.asend(STOP)
                        assert isinstance(stopped, Finish)  # parse_chat_stream's answer to STOP
                        finish = stopped
                        break
        except UpstreamError:
            metrics.UPSTREAM_ERRORS.labels(upstream.host, "stream").inc()
            raise
        finally:
            # Closing mid-body drops the connection: the upstream sees the client leave.
            await response.aclose()
            upstream.in_flight -= 1
        # Released before the Finish goes out: consumers often stop reading at the Finish, and
        # the upstream must not count as busy until this generator is garbage-collected.
        if finish is not None:
            yield finish

    def _body(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            key: value for key, value in params.extra.items() if key not in _OWNED
        }
        body["model"] = self._settings.model or model
        body["messages"] = messages
        body["max_tokens"] = params.max_tokens or self._settings.default_max_tokens
        optional = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "stop": params.stop or None,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    async def relay(self, endpoint: RelayEndpoint, body: dict[str, Any]) -> dict[str, Any]:
        response, upstream = await self._open(self._relayed(body), False, endpoint)
        try:
            await response.aread()
            answer = response.json()
        except httpx.TimeoutException as exc:
            raise UpstreamError("The model upstream stalled.", status_code=504) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"The model upstream sent a broken answer: {exc!r}") from exc
        finally:
            await response.aclose()
            upstream.in_flight -= 1
        if not isinstance(answer, dict):
            raise UpstreamError("The model upstream's answer is not a JSON object.")
        return answer

    async def relay_stream(
        self, endpoint: RelayEndpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        response, upstream = await self._open(self._relayed(body), False, endpoint)
        return self._relayed_chunks(response, upstream)

    async def _relayed_chunks(
        self, response: UpstreamResponse, upstream: Upstream
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async with aclosing(parse_event_stream(response)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            await response.aclose()  # mid-body: the upstream sees the client leave
            upstream.in_flight -= 1

    def _relayed(self, body: dict[str, Any]) -> dict[str, Any]:
        return body | {"model": self._settings.model or body["model"]}

    async def _open(
        self,
        body: dict[str, Any],
        constrain: bool,
        endpoint: str = _CHAT,
        grammar: str = rlpa.FORMAT_GBNF,
    ) -> tuple[UpstreamResponse, Upstream]:
        """A 200 response whose body has not been read yet, and the upstream it came from."""
        self._admit()
        tried: set[str] = set()
        failure = UpstreamError("No model upstream was tried.", status_code=503)
        for attempt in range(max(0, self._settings.upstream_retries) + 1):
            if attempt:
                await asyncio.sleep(_BACKOFF_S * 2 ** (attempt - 1))
            upstream = self.pool.pick(tried)
            tried.add(upstream.url)
            upstream.in_flight += 1
            try:
                fields = await self._grammar_fields(upstream, grammar) if constrain else {}
                return await self._attempt(upstream, body | fields, endpoint), upstream
            except _RetryableError as exc:
                upstream.in_flight -= 1
                logger.warning("upstream attempt %d failed: %s", attempt + 1, exc.message)
                failure = exc
            except BaseException:
                upstream.in_flight -= 1
                raise
        raise UpstreamError(failure.message, status_code=failure.status_code)

    def _admit(self) -> None:
        """Refuse a request past RLPA_UPSTREAM_MAX_INFLIGHT at once (503, Retry-After) rather
        than pile it onto upstreams that already have all this replica lets them have. Counted
        from the upstreams' in-flight counts, which `_open` raises before its first await: no
        two requests can take the last place. (A retry of an admitted request is not counted
        again.)"""
        limit = self._settings.upstream_max_inflight
        if limit and sum(up.in_flight for up in self.pool.upstreams) >= limit:
            metrics.BACKEND_BUSY.labels("in_flight").inc()
            raise BackendBusyError(
                f"The model is busy: {limit} requests are in flight to it from this gateway, as "
                "many as it sends. Try again shortly."
            )

    async def _grammar_fields(self, upstream: Upstream, grammar: str) -> dict[str, Any]:
        """The request fields that hold this upstream to the RLPA format (`grammar`)."""
        dialect = self._settings.upstream_grammar
        if dialect == "auto":
            if upstream.dialect is None:
                async with self._identifying[upstream.url]:
                    if upstream.dialect is None:
                        upstream.dialect = await self._identify(upstream)
            dialect = upstream.dialect or "none"
        return grammar_fields(dialect, grammar)

    async def _identify(self, upstream: Upstream) -> GrammarDialect | None:
        """Which grammar field the upstream takes, from its own answers; None when its model
        list did not come (asked again next time).

        vLLM lists its models as `owned_by: "vllm"` and says its version at /version;
        llama.cpp's server lists them as "llamacpp" (and serves /props); llama-cpp-python's
        `llama_cpp.server` says "me", and its OpenAPI title names llama.cpp.
        """
        models = await self._probe(upstream, f"{upstream.url}/models")
        if models is None:
            return None
        entries = models.get("data")
        entries = entries if isinstance(entries, list) else []
        owners = {str(m.get("owned_by")) for m in entries if isinstance(m, dict)}
        if "vllm" in owners:
            return _vllm_dialect(await self._probe(upstream, f"{upstream.root}/version"))
        if "llamacpp" in owners:
            return "llamacpp"
        props = await self._probe(upstream, f"{upstream.root}/props")
        if props is not None and "default_generation_settings" in props:
            return "llamacpp"
        api = await self._probe(upstream, f"{upstream.root}/openapi.json")
        info = api.get("info") if api is not None else None
        if isinstance(info, dict) and "llama.cpp" in str(info.get("title")):
            return "llamacpp"
        logger.warning(
            "upstream %s is neither vLLM nor llama.cpp (models owned by %s): its output is not "
            "constrained to the RLPA format; set RLPA_UPSTREAM_GRAMMAR if it takes a grammar",
            upstream.url,
            ", ".join(sorted(owners)) or "nobody",
        )
        return "none"

    async def _probe(self, upstream: Upstream, url: str) -> dict[str, Any] | None:
        """A JSON object the upstream serves at `url`, or None. Unreachable is this attempt's
        failure, as it would be for the chat request."""
        try:
            # A short wait: the chat request waits behind this, and a slow answer is no answer.
            response = await self._client.get(
                url, timeout=self._settings.upstream_connect_timeout_s
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.pool.mark_down(upstream)
            metrics.UPSTREAM_ERRORS.labels(upstream.host, "connect").inc()
            logger.warning("cannot reach upstream %s: %r", upstream.url, exc)
            status = 504 if isinstance(exc, httpx.ConnectTimeout) else 503
            raise _RetryableError(_UNREACHABLE, status_code=status) from exc
        except httpx.HTTPError:
            return None
        try:
            found = response.json() if response.status_code == 200 else None
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    async def _attempt(
        self, upstream: Upstream, body: dict[str, Any], endpoint: str
    ) -> UpstreamResponse:
        url, headers = f"{upstream.url}/{endpoint}", _request_headers()
        try:
            if self._lean[upstream.url]:
                response: UpstreamResponse = await self._http.post(
                    url, encode_json(body), headers or {}
                )
            else:
                request = self._client.build_request("POST", url, json=body, headers=headers)
                response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.pool.mark_down(upstream)
            metrics.UPSTREAM_ERRORS.labels(upstream.host, "connect").inc()
            status = 504 if isinstance(exc, httpx.ConnectTimeout) else 503
            logger.warning("cannot reach upstream %s: %r", upstream.url, exc)
            raise _RetryableError(_UNREACHABLE, status_code=status) from exc
        except httpx.TimeoutException as exc:
            # Not retried: the upstream may still be working on it, and a retry would double that.
            self.pool.mark_down(upstream)
            metrics.UPSTREAM_ERRORS.labels(upstream.host, "timeout").inc()
            raise UpstreamError(
                f"The model upstream did not answer in time ({exc.__class__.__name__}).",
                status_code=504,
            ) from exc
        except httpx.TransportError as exc:
            metrics.UPSTREAM_ERRORS.labels(upstream.host, "transport").inc()
            logger.warning("upstream %s failed: %r", upstream.url, exc)
            raise _RetryableError(
                "The model upstream failed before answering.", status_code=502
            ) from exc
        self.pool.mark_up(upstream)
        if response.status_code < 400:
            return response
        metrics.UPSTREAM_ERRORS.labels(upstream.host, "status").inc()
        raise await _status_error(upstream, response, endpoint)


def grammar_fields(dialect: GrammarDialect, grammar: str) -> dict[str, Any]:
    """The request fields that constrain an upstream of this kind to a GBNF grammar."""
    if dialect == "vllm":
        return {"structured_outputs": {"grammar": grammar}}
    if dialect == "vllm-guided":
        return {"guided_grammar": grammar}
    if dialect == "llamacpp":
        return {"grammar": grammar}
    return {}


def _request_headers() -> dict[str, str] | None:
    """The request's id and, when the turn is traced, its trace context (`traceparent`)."""
    headers = _request_id_header() | tracing.outgoing_headers()
    return headers or None


def _request_id_header() -> dict[str, str]:
    """The request's id for the upstream's log, when it is a UUID (the gateway's own always are).
    llama-cpp-python's server answers 400 to any other X-Request-Id (starlette-context's
    RequestIdPlugin requires a UUID), so a client's free-form id stays at the gateway."""
    request_id = observability.current_request_id()
    if request_id is None:
        return {}
    try:
        uuid.UUID(request_id)
    except ValueError:
        return {}
    return {"X-Request-Id": request_id}


def _in_flight(upstream: Upstream) -> Callable[[], int]:
    return lambda: upstream.in_flight


def _error_kind(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "status" if isinstance(exc, httpx.HTTPStatusError) else "transport"


def _vllm_dialect(version: dict[str, Any] | None) -> GrammarDialect:
    """`structured_outputs` from vLLM 0.12 on (and when the version is unknown: the current
    field), `guided_grammar` before."""
    found = re.match(r"(\d+)\.(\d+)", str((version or {}).get("version", "")))
    if found and (int(found[1]), int(found[2])) < _VLLM_STRUCTURED_OUTPUTS:
        return "vllm-guided"
    return "vllm"


async def _status_error(
    upstream: Upstream, response: UpstreamResponse, endpoint: str = _CHAT
) -> Exception:
    status = response.status_code
    try:
        await response.aread()
        message, param, code = upstream_error_detail(response)
    except httpx.HTTPError:  # the body did not arrive: the status says enough
        message, param, code = f"HTTP {status}", None, None
    finally:
        await response.aclose()
    if status >= 500 or status == 429:
        logger.warning("upstream %s answered %d: %s", upstream.url, status, message)
        return _RetryableError(
            f"The model upstream failed (HTTP {status}).", status_code=503 if status == 429 else 502
        )
    if status == 404 and endpoint != _CHAT:
        # The upstream does not serve the route (the model was checked before): the client's
        # to know, as OpenAI says of an unknown route.
        return NotFoundError(
            f"The model upstream does not serve /v1/{endpoint}.", code="unsupported_endpoint"
        )
    if status in (401, 403, 404):
        # Not the client's fault: wrong credentials, base URL or model id in the gateway's config.
        logger.error("upstream %s answered %d: %s", upstream.url, status, message)
        return UpstreamError(
            f"The model upstream refused the gateway (HTTP {status}); see the gateway's log.",
            status_code=502,
        )
    return BadRequestError(message, param=param, code=code or "upstream_rejected")
