"""OpenAI-compatible routes: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from server import observability
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
    body: p.ChatCompletionRequest, request: Request, principal: ChatPrincipalDep, chat: ChatDep
) -> Any:
    scope_state = request.scope.get("state", {})
    request_id = scope_state.get("request_id") or f"req-{uuid.uuid4().hex}"
    asked = fields.turn_request(body, chat.backend.supported_extras())
    if "arrived_at" in scope_state:
        asked.arrived_at = scope_state["arrived_at"]
    turn = await chat.prepare(asked, principal, request_id)
    observability.note_model(turn.model)  # checked against the served models: a bounded label
    observability.note_user(turn.user)
    # Until the first byte goes out nothing tells the server that the client left: watch for it,
    # so that a client gone while the profile block is written cancels the turn (and the
    # upstream's generation), and nothing of it is stored.
    if not body.stream:
        return await disconnect.cancel_on_disconnect(request, render.complete(chat, turn))
    # Returns once the backend has answered: errors before that keep their HTTP status.
    chunks = await disconnect.cancel_on_disconnect(
        request, render.open_stream(chat, turn, f"chatcmpl-{uuid.uuid4().hex}")
    )
    return StreamingResponse(
        sse.encode(chunks),
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
