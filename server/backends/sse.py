"""Reading an upstream's OpenAI chat-completion event stream and its error bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from server.backends.base import STOP, BackendStream, Finish, TextDelta
from server.backends.upstream_http import UpstreamResponse
from server.errors import UpstreamError

_MAX_MESSAGE_CHARS = 1000


async def parse_chat_stream(
    response: UpstreamResponse, messages: list[dict[str, str]]
) -> BackendStream:
    """Text deltas of choice 0, then one Finish with the upstream's token usage.

    Sent STOP, it reads no further and answers with a Finish counting what came so far (the
    caller closes the response, which ends the upstream's generation).

    Raises UpstreamError: 502 when the stream breaks or ends unfinished, 504 when it stalls past
    the read timeout.
    """
    usage: dict[str, Any] | None = None
    reason: str | None = None
    deltas = 0
    done = False
    try:
        async for line in response.aiter_lines():
            # What follows [DONE] is read to the end of the body and ignored: a response left
            # unread cannot go back to the connection pool, and every turn would open a new
            # connection to the upstream.
            chunk = None if done else _data(line)
            if chunk is None:
                continue
            if isinstance(chunk, str):  # [DONE]
                done = True
                continue
            if "error" in chunk:
                message = _message(chunk["error"]) or "unknown error"
                raise UpstreamError(f"The model upstream failed mid-stream: {message}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                content = (choice.get("delta") or {}).get("content")
                if content:
                    deltas += 1
                    if (yield TextDelta(content)) is STOP:
                        yield _finish("stop", usage, deltas, messages)
                        return
                reason = choice.get("finish_reason") or reason
    except httpx.TimeoutException as exc:
        if not done:  # after [DONE] the answer is whole, however the body ends
            raise UpstreamError("The model upstream stalled mid-stream.", status_code=504) from exc
    except httpx.TransportError as exc:
        if not done:
            raise UpstreamError(f"The model upstream dropped the stream: {exc!r}") from exc
    if reason is None:
        raise UpstreamError("The model upstream ended the stream before it finished.")
    yield _finish(reason, usage, deltas, messages)


async def parse_event_stream(
    response: UpstreamResponse,
) -> AsyncGenerator[dict[str, Any], None]:
    """Every JSON chunk of an upstream's event stream as it comes, for a route the gateway
    relays as it is (`/v1/completions`).

    Raises UpstreamError as parse_chat_stream does: on an error event, a stream that breaks,
    stalls or ends before its [DONE].
    """
    done = False
    try:
        async for line in response.aiter_lines():
            chunk = None if done else _data(line)  # after [DONE]: read on, for the pool
            if chunk is None:
                continue
            if isinstance(chunk, str):
                done = True
                continue
            if "error" in chunk:
                message = _message(chunk["error"]) or "unknown error"
                raise UpstreamError(f"The model upstream failed mid-stream: {message}")
            yield chunk
    except httpx.TimeoutException as exc:
        if not done:
            raise UpstreamError("The model upstream stalled mid-stream.", status_code=504) from exc
    except httpx.TransportError as exc:
        if not done:
            raise UpstreamError(f"The model upstream dropped the stream: {exc!r}") from exc
    if not done:
        raise UpstreamError("The model upstream ended the stream before it finished.")


def _data(line: str) -> dict[str, Any] | str | None:
    """The JSON of one `data:` line, "[DONE]", or None for other SSE lines."""
    if not line.startswith("data:"):
        return None  # blank separators, comments (": ping"), event names
    payload = line[5:].strip()
    if payload == "[DONE]":
        return payload
    try:
        parsed = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise UpstreamError(f"The model upstream sent invalid JSON: {payload[:200]!r}") from exc
    return parsed if isinstance(parsed, dict) else None


def _finish(
    reason: str, usage: dict[str, Any] | None, deltas: int, messages: list[dict[str, str]]
) -> Finish:
    if usage:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
    else:
        # Servers without streamed usage (llama-cpp-python's server) send one delta per token, but
        # the prompt's size is unknown: about four characters per token plus each message's frame.
        completion = deltas
        prompt = sum(len(message.get("content") or "") // 4 + 4 for message in messages)
    return Finish(
        reason="length" if reason == "length" else "stop",
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def upstream_error_detail(response: UpstreamResponse) -> tuple[str, str | None, str | None]:
    """(message, param, code) from an upstream's error body, in OpenAI's or vLLM's shape."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:_MAX_MESSAGE_CHARS] or f"HTTP {response.status_code}"), None, None
    error = body.get("error", body) if isinstance(body, dict) else body
    message = _message(error) or f"HTTP {response.status_code}"
    param = error.get("param") if isinstance(error, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return (
        message[:_MAX_MESSAGE_CHARS],
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
    )


def _message(error: Any) -> str | None:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "detail"):
            value = error.get(key)
            if value:
                return value if isinstance(value, str) else json.dumps(value)
    return None
