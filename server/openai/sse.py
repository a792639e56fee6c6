"""The one SSE helper: `data: {json}` per chunk, `data: [DONE]` at the end, an error event then
`[DONE]` on a mid-stream failure, and `: keep-alive` comments while there is nothing to send.

The Responses API's streams (`named=True`) differ as OpenAI's do: each event is named by its
chunk's `type` (`event: response.output_text.delta`), a failure is an `error` event, and no
`[DONE]` ends them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from server import observability
from server.errors import RLPAError, error_body

logger = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"
# A comment line: SSE clients (the openai library's among them) skip it; proxies that close idle
# connections see traffic.
KEEP_ALIVE = ": keep-alive\n\n"


# A chunk as the gateway built it, or as an upstream sent it (a relayed stream).
Chunk = BaseModel | dict[str, Any]


def event(chunk: Chunk, named: bool = False) -> str:
    if isinstance(chunk, BaseModel):
        data = chunk.model_dump_json(exclude_unset=False)
    else:
        data = json.dumps(chunk)
    if not named:
        return f"data: {data}\n\n"
    name = chunk.get("type") if isinstance(chunk, dict) else getattr(chunk, "type", None)
    return f"event: {name}\ndata: {data}\n\n"


async def encode(
    chunks: AsyncIterator[Chunk], keepalive_s: float = 0.0, *, named: bool = False
) -> AsyncIterator[str]:
    try:
        async for chunk in _kept_alive(chunks, keepalive_s):
            yield KEEP_ALIVE if chunk is None else event(chunk, named)
    except RLPAError as exc:
        observability.note_stream_failed()
        yield _failure(exc.body(), named)
    except Exception:
        observability.note_stream_failed()
        logger.exception("chat stream failed")
        yield _failure(
            error_body("The server had an error while streaming.", "server_error"), named
        )
    if not named:
        yield DONE


def _failure(body: dict[str, Any], named: bool) -> str:
    if not named:
        return f"data: {json.dumps(body)}\n\n"
    error = body["error"]  # OpenAI's Responses `error` event: the error's fields at the top
    failed = {key: error[key] for key in ("code", "message", "param")}
    return event({"type": "error", **failed}, named=True)


async def _kept_alive(chunks: AsyncIterator[Chunk], every_s: float) -> AsyncIterator[Chunk | None]:
    """`chunks`, with a None each time `every_s` seconds pass without one (never if 0)."""
    if every_s <= 0:
        async for chunk in chunks:
            yield chunk
        return
    waiting: asyncio.Future[Chunk] | None = None
    try:
        while True:
            if waiting is None:
                # Its own task, so that a timeout never cancels the turn mid-step.
                waiting = asyncio.ensure_future(_next(chunks))
            done, _ = await asyncio.wait({waiting}, timeout=every_s)
            if not done:
                yield None
                continue
            try:
                chunk = waiting.result()
            except StopAsyncIteration:
                return
            waiting = None
            yield chunk
    finally:
        if waiting is not None:  # the client left: the turn is cancelled where it waits
            waiting.cancel()
            await asyncio.wait({waiting})


async def _next(chunks: AsyncIterator[Chunk]) -> Chunk:
    return await anext(chunks)
