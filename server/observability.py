"""Request ids, one log line per request, and the per-request metrics (pure ASGI).

Each request gets a `RequestRecord` in a context variable: the auth dependency, the routers and
the SSE helper note on it what they learn (key, tenant, end user, served model, a failed stream,
a chat turn's tokens), and when the response has ended the middleware counts the request and
logs one line from it.
The line names the end user only by a hash and never holds a key, a message or a trait.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import metrics
from server.db import utcnow
from server.pseudonyms import Pseudonyms
from server.settings import Settings

CHAT_ROUTE = "/v1/chat/completions"
# A client's id is kept if it is short and plain (UUIDs, trace ids); anything else is replaced.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_access = logging.getLogger("server.access")


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    key_id: int | None = None
    tenant: str | None = None
    user: str | None = None  # hashed only when the line is written
    model: str | None = None  # set only once checked against the served models
    stream_failed: bool = False
    prompt_tokens: int | None = None  # a chat turn's, once one of its choices is done
    completion_tokens: int | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("rlpa_request", default=None)


def current_request_id() -> str | None:
    record = _current.get()
    return record.request_id if record is not None else None


def note_principal(key_id: int | None, tenant: str, bound_user: str | None) -> None:
    record = _current.get()
    if record is not None:
        record.key_id, record.tenant = key_id, tenant
        record.user = bound_user or record.user


def note_user(user: str | None) -> None:
    record = _current.get()
    if record is not None and user is not None:
        record.user = user


def note_model(model: str) -> None:
    record = _current.get()
    if record is not None:
        record.model = model


def note_usage(prompt_tokens: int, completion_tokens: int) -> None:
    """Add a finished choice's tokens to the request's line (a turn's prompt is counted once,
    with its first choice, as in its `usage`)."""
    record = _current.get()
    if record is not None:
        record.prompt_tokens = (record.prompt_tokens or 0) + prompt_tokens
        record.completion_tokens = (record.completion_tokens or 0) + completion_tokens


def note_stream_failed() -> None:
    record = _current.get()
    if record is not None:
        record.stream_failed = True


def _request_id(scope: Scope) -> str:
    """The client's X-Request-Id, else its Idempotency-Key, else a new UUID. A client that
    retries a turn with the same id has its profile change applied at most once."""
    given: dict[bytes, str] = {}
    for name, value in scope.get("headers") or ():
        if name in (b"x-request-id", b"idempotency-key") and name not in given:
            given[name] = str(value, "latin-1")
    for name in (b"x-request-id", b"idempotency-key"):
        if name in given and _CLIENT_ID.fullmatch(given[name]):
            return given[name]
    return str(uuid.uuid4())  # a UUID: every upstream takes it (see openai_upstream)


def _route(scope: Scope) -> str:
    """The matched route's template; `unmatched` for a 404, and for a request refused before
    routing (a 413 from the body limit)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    """X-Request-Id in and out, then metrics and the log line once the response has ended."""

    def __init__(self, app: ASGIApp, pseudonyms: Pseudonyms) -> None:
        self.app = app
        self.pseudonyms = pseudonyms  # the log names a user by their pseudonym

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(_request_id(scope))
        state = scope.setdefault("state", {})
        state["request_id"] = record.request_id
        state["arrived_at"] = utcnow()
        header = (b"x-request-id", record.request_id.encode())
        status, complete = 500, False  # an exception before the response is a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        token = _current.set(record)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            user = self.pseudonyms.of(record.user) if record.user is not None else None
            _finish(scope, record, user, status, complete, time.perf_counter() - started)


def _finish(
    scope: Scope,
    record: RequestRecord,
    user_hash: str | None,
    status: int,
    complete: bool,
    elapsed: float,
) -> None:
    route = _route(scope)
    method = scope["method"] if scope["method"] in _METHODS else "other"
    metrics.REQUESTS.labels(route, method, str(status), record.model or "").inc()
    metrics.REQUEST_DURATION.labels(route, method).observe(elapsed)
    outcome = None
    if route == CHAT_ROUTE:
        if status == 499:  # server.errors.ClientDisconnectedError
            outcome = "disconnected"
        elif status >= 400 or record.stream_failed:
            outcome = "error"
        else:
            outcome = "ok" if complete else "disconnected"
        metrics.CHAT_REQUESTS.labels(outcome).inc()
    if not _access.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(elapsed * 1000, 1),
        "key_id": record.key_id,
        "tenant": record.tenant,
        "user_hash": user_hash,
        "model": record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
    }
    if outcome is not None:
        fields["outcome"] = outcome
    _access.info("%s %s %d", method, route, status, extra={"rlpa": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a line logged during a request carries its id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "rlpa", None)
        request_id = current_request_id()
        if fields:
            entry.update(fields)
        elif request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The gateway's plain format, the access line's fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s:     %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "rlpa", None)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def log_format(settings: Settings) -> Literal["json", "text"]:
    """RLPA_LOG_FORMAT; `auto`: text for a person at a terminal, JSON for a log collector."""
    if settings.log_format != "auto":
        return settings.log_format
    return "text" if sys.stderr.isatty() else "json"


def log_handler(fmt: Literal["json", "text"], stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings) -> None:
    """For `rlpa serve`: one handler on the root logger, so that uvicorn's and the libraries'
    lines come out in the same format as the gateway's."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(log_format(settings))]
    root.setLevel(logging.WARNING)
    for name in ("server", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(settings.log_level.upper())
