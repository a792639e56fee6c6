"""The one SSE helper: `data: {json}` per chunk, `data: [DONE]` at the end, an error event then
`[DONE]` on a mid-stream failure, and `: keep-alive` comments while there is nothing to send."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel

from server import observability
from server.errors import RLPAError, error_body

logger = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"
# A comment line: SSE clients (the openai library's among them) skip it; proxies that close idle
# connections see traffic.
KEEP_ALIVE = ": keep-alive\n\n"


def event(chunk: BaseModel) -> str:
    return f"data: {chunk.model_dump_json(exclude_unset=False)}\n\n"


async def encode(chunks: AsyncIterator[BaseModel], keepalive_s: float = 0.0) -> AsyncIterator[str]:
    try:
        async for chunk in _kept_alive(chunks, keepalive_s):
            yield KEEP_ALIVE if chunk is None else event(chunk)
    except RLPAError as exc:
        observability.note_stream_failed()
        yield f"data: {json.dumps(exc.body())}\n\n"
    except Exception:
        observability.note_stream_failed()
        logger.exception("chat stream failed")
        body = error_body("The server had an error while streaming.", "server_error")
        yield f"data: {json.dumps(body)}\n\n"
    yield DONE


async def _kept_alive(
    chunks: AsyncIterator[BaseModel], every_s: float
) -> AsyncIterator[BaseModel | None]:
    """`chunks`, with a None each time `every_s` seconds pass without one (never if 0)."""
    if every_s <= 0:
        async for chunk in chunks:
            yield chunk
        return
    waiting: asyncio.Future[BaseModel] | None = None
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


async def _next(chunks: AsyncIterator[BaseModel]) -> BaseModel:
    return await anext(chunks)
