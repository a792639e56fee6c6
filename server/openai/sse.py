"""The one SSE helper: `data: {json}` per chunk, `data: [DONE]` at the end, an error event then
`[DONE]` on a mid-stream failure."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel

from server import observability
from server.errors import RLPAError, error_body

logger = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"


def event(chunk: BaseModel) -> str:
    return f"data: {chunk.model_dump_json(exclude_unset=False)}\n\n"


async def encode(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield event(chunk)
    except RLPAError as exc:
        observability.note_stream_failed()
        yield f"data: {json.dumps(exc.body())}\n\n"
    except Exception:
        observability.note_stream_failed()
        logger.exception("chat stream failed")
        body = error_body("The server had an error while streaming.", "server_error")
        yield f"data: {json.dumps(body)}\n\n"
    yield DONE
