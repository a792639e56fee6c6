"""The one error renderer."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from server.errors import BadRequestError


def test_an_error_quoting_a_lone_surrogate_still_renders() -> None:
    error = BadRequestError("No user 'a\ud800b'.", param="user\udfff")
    body = JSONResponse(error.body(), status_code=error.status_code).body
    assert b"No user 'a?b'." in body and b'"param":"user?"' in body
