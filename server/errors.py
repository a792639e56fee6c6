"""The error hierarchy and the one place that renders it in OpenAI's error shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class RLPAError(Exception):
    status_code = 500
    type = "server_error"
    code: str | None = None
    retry_after: int | None = None  # seconds, sent as Retry-After

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class BadRequestError(RLPAError):
    status_code = 400
    type = "invalid_request_error"


class AuthenticationError(RLPAError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(RLPAError):
    status_code = 403
    type = "permission_error"
    code = "insufficient_scope"


class NotFoundError(RLPAError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class PayloadTooLargeError(RLPAError):
    status_code = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimitError(RLPAError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class DatabaseUnavailableError(RLPAError):
    """The profile database cannot be reached or did not answer in time."""

    status_code = 503
    type = "server_error"
    code = "database_unavailable"
    retry_after = 2

    def __init__(
        self, message: str = "The profile store is unavailable; try again shortly."
    ) -> None:
        super().__init__(message)


class ProfileWriteError(DatabaseUnavailableError):
    """The reply was generated but what it taught about the user was not stored: the store
    could not be reached, so nothing was sent to it."""

    code = "profile_not_stored"
    outcome = "not_stored"

    def __init__(self) -> None:
        super().__init__(
            "The reply could not be completed: the user's profile could not be stored "
            "(the profile store is unavailable). Nothing was remembered; retry the request."
        )


class ProfileWriteUnknownError(ProfileWriteError):
    """The profile change was sent to the store, which did not confirm it in time: it may be
    committed later. A retry with the same X-Request-Id is applied at most once."""

    code = "profile_write_unknown"
    outcome = "unknown"

    def __init__(self) -> None:
        DatabaseUnavailableError.__init__(
            self,
            "The reply could not be completed: the profile store did not confirm the user's "
            "profile change in time, so whether it was stored is unknown. Retry with the same "
            "X-Request-Id (or Idempotency-Key) header: a change is applied at most once per "
            "request id.",
        )


class ClientDisconnectedError(RLPAError):
    """The client left before the response started; no one reads this (nginx's 499, for the
    access log and metrics)."""

    status_code = 499
    type = "invalid_request_error"
    code = "client_closed_request"

    def __init__(self) -> None:
        super().__init__("The client closed the connection before the response started.")


class UpstreamError(RLPAError):
    """The model backend failed (502), is unavailable (503) or timed out (504)."""

    status_code = 502
    type = "upstream_error"
    code = "bad_gateway"

    def __init__(self, message: str, *, status_code: int = 502, code: str | None = None):
        super().__init__(message, code=code)
        self.status_code = status_code


class BackendBusyError(UpstreamError):
    """The model backend has as much work as this replica lets it have (RLPA_MAX_QUEUE,
    RLPA_UPSTREAM_MAX_INFLIGHT): refused at once with 503 and Retry-After, as Ollama refuses
    past OLLAMA_MAX_QUEUE, instead of waiting until the client gives up. Nothing was generated
    or stored."""

    code = "server_busy"
    retry_after = 1

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=503, code=self.code)


def _printable(text: str | None) -> str | None:
    # An error may quote client input; a lone surrogate in it must not make the error a 500.
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": _printable(message),
            "type": type_,
            "param": _printable(param),
            "code": code,
        }
    }


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    return (f"Invalid value for '{param}': {msg}" if param else msg), param


def install(app: FastAPI) -> None:
    @app.exception_handler(RLPAError)
    async def _rlpa(_request: Request, exc: RLPAError) -> JSONResponse:
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        body = error_body(message, "invalid_request_error", param, "invalid_value")
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(
            error_body(str(exc.detail), type_, None, code), status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        # Starlette answers this one outside every middleware: the request id is added here.
        request_id = request.scope.get("state", {}).get("request_id")
        return JSONResponse(
            error_body("The server had an error processing the request.", "server_error"),
            status_code=500,
            headers={"X-Request-Id": request_id} if request_id else None,
        )
