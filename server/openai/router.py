"""OpenAI-compatible routes: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from server.chat.service import ChatService
from server.deps import ChatPrincipalDep, StateDep
from server.errors import NotFoundError, UpstreamError
from server.openai import disconnect, fields, render, sse
from server.openai import protocol as p

router = APIRouter(prefix="/v1", tags=["openai"])

_errors: dict[int | str, dict[str, Any]] = {
    status: {"model": p.ErrorResponse, "description": text}
    for status, text in (
        (400, "Invalid request"),
        (401, "Missing or wrong API key"),
        (403, "The key lacks the chat scope"),
        (404, "Unknown model"),
        (413, "Request body too large"),
        (429, "Rate limit reached"),
        (502, "The model backend failed"),
        (503, "No model backend available"),
        (504, "The model backend timed out"),
    )
}


async def get_chat(state: StateDep) -> ChatService:
    if state.chat is None:
        raise UpstreamError("No model backend is configured.", status_code=503)
    return state.chat


ChatDep = Annotated[ChatService, Depends(get_chat)]


@router.post(
    "/chat/completions",
    response_model=p.ChatCompletionResponse,
    responses={**_errors, 200: {"content": {"text/event-stream": {}}}},
)
async def create_chat_completion(
    body: p.ChatCompletionRequest,
    request: Request,
    principal: ChatPrincipalDep,
    chat: ChatDep,
    state: StateDep,
) -> Any:
    started = time.monotonic()
    scope_state = request.scope.get("state", {})
    request_id = scope_state.get("request_id") or f"req-{uuid.uuid4().hex}"
    asked = fields.turn_request(
        body, chat.backend.supported_extras(), arrived_at=scope_state.get("arrived_at")
    )
    events = chat.turn(asked, principal, request_id)
    # Until the first byte goes out nothing tells the server that the client left: watch for it,
    # so that a client gone before then (for a whole response: before the end) cancels the turn
    # and the upstream's generation, and nothing of a block it had not completed is stored.
    # A stream's first byte goes out as the backend begins; Starlette watches from there.
    if not body.stream:
        return await disconnect.cancel_on_disconnect(request, render.complete(events, body.model))
    shape = render.StreamShape(
        completion_id=f"chatcmpl-{uuid.uuid4().hex}",
        model=body.model,
        n=body.n,
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        started=started,
    )
    # Returns once the backend has begun to answer: errors before that keep their HTTP status.
    chunks = await disconnect.cancel_on_disconnect(request, render.open_stream(events, shape))
    return StreamingResponse(
        sse.encode(chunks, state.settings.stream_keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/models", response_model=p.ModelList, responses=_errors)
async def list_models(_principal: ChatPrincipalDep, chat: ChatDep) -> p.ModelList:
    return p.ModelList(data=[p.ModelCard(id=name) for name in await chat.models()])


@router.get("/models/{model_id:path}", response_model=p.ModelCard, responses=_errors)
async def retrieve_model(model_id: str, _principal: ChatPrincipalDep, chat: ChatDep) -> p.ModelCard:
    if model_id not in await chat.models():
        raise NotFoundError(
            f"The model '{model_id}' does not exist.", param="model", code="model_not_found"
        )
    return p.ModelCard(id=model_id)
