"""Cancel work when the client leaves before the response has started.

A server learns that a client left only by reading from it (an `http.disconnect` message) or by
failing to write to it. Until a response starts nothing is written, so a turn whose reply has not
begun (the model is still writing the hidden profile block) would run to its end, and store its
profile, for a client that is gone. Streams are watched by Starlette once they start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request

from server.errors import ClientDisconnectedError

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body has been read whole (FastAPI parsed it), so the next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result, or ClientDisconnectedError once `work` was cancelled because the
    client left first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    raise ClientDisconnectedError()
