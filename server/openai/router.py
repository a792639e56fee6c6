"""OpenAI-compatible routes: /v1/chat/completions, /v1/responses and /v1/models, with the
profile; /v1/completions and /v1/embeddings relayed to an upstream as they are.

A non-streamed turn that keeps a profile says in `X-RLPA-Memory-Changed` (true/false) whether it
changed it, as its body's `rlpa.changed` does; a stream's headers go out before the profile
block is written, so a stream says it only in its last chunk (event)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from server.backends.base import RelayEndpoint
from server.chat.service import ChatService
from server.deps import AppState, ChatPrincipalDep, StateDep
from server.errors import NotFoundError, UpstreamError
from server.openai import disconnect, fields, identity, render, responses, sse
from server.openai import protocol as p
from server.openai import protocol_responses as pr

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
MEMORY_CHANGED_HEADER = "X-RLPA-Memory-Changed"
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _end_user(
    body: p.ChatCompletionRequest | pr.ResponsesRequest, request: Request, state: AppState
) -> str | None:
    return identity.end_user(
        body.user, body.safety_identifier, request.headers, state.settings.user_header
    )


def _memory_header(response: Response, rlpa: p.RLPAProfile | None) -> None:
    if rlpa is not None:
        response.headers[MEMORY_CHANGED_HEADER] = "true" if rlpa.changed else "false"


@router.post(
    "/chat/completions",
    response_model=p.ChatCompletionResponse,
    responses={**_errors, 200: {"content": {"text/event-stream": {}}}},
)
async def create_chat_completion(
    body: p.ChatCompletionRequest,
    request: Request,
    response: Response,
    principal: ChatPrincipalDep,
    chat: ChatDep,
    state: StateDep,
) -> Any:
    started = time.monotonic()
    scope_state = request.scope.get("state", {})
    request_id = scope_state.get("request_id") or f"req-{uuid.uuid4().hex}"
    asked = fields.turn_request(
        body,
        chat.backend.supported_extras(),
        arrived_at=scope_state.get("arrived_at"),
        user=_end_user(body, request, state),
    )
    events = chat.turn(asked, principal, request_id)
    # Until the first byte goes out nothing tells the server that the client left: watch for it,
    # so that a client gone before then (for a whole response: before the end) cancels the turn
    # and the upstream's generation, and nothing of a block it had not completed is stored.
    # A stream's first byte goes out as the backend begins; Starlette watches from there.
    if not body.stream:
        completion = await disconnect.cancel_on_disconnect(
            request, render.complete(events, body.model)
        )
        _memory_header(response, completion.rlpa)
        return completion
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
        headers=_STREAM_HEADERS,
    )


@router.get("/models", response_model=p.ModelList, responses=_errors)
async def list_models(_principal: ChatPrincipalDep, chat: ChatDep) -> p.ModelList:
    return p.ModelList(data=[p.ModelCard(id=name) for name in await chat.listed_models()])


@router.get("/models/{model_id:path}", response_model=p.ModelCard, responses=_errors)
async def retrieve_model(model_id: str, _principal: ChatPrincipalDep, chat: ChatDep) -> p.ModelCard:
    if model_id not in await chat.listed_models():
        raise NotFoundError(
            f"The model '{model_id}' does not exist.", param="model", code="model_not_found"
        )
    return p.ModelCard(id=model_id)


@router.post(
    "/responses",
    response_model=pr.ResponseObject,
    responses={**_errors, 200: {"content": {"text/event-stream": {}}}},
)
async def create_response(
    body: pr.ResponsesRequest,
    request: Request,
    response: Response,
    principal: ChatPrincipalDep,
    chat: ChatDep,
    state: StateDep,
) -> Any:
    """A text turn through the Responses API: the same turn as a chat completion, profile
    included (server/openai/responses.py says what is served and what is refused)."""
    scope_state = request.scope.get("state", {})
    request_id = scope_state.get("request_id") or f"req-{uuid.uuid4().hex}"
    asked = responses.turn_request(
        body,
        chat.backend.supported_extras(),
        arrived_at=scope_state.get("arrived_at"),
        user=_end_user(body, request, state),
    )
    events = chat.turn(asked, principal, request_id)
    shape = responses.ResponseShape.of(body)
    if not body.stream:
        answer = await disconnect.cancel_on_disconnect(request, responses.complete(events, shape))
        _memory_header(response, answer.rlpa)
        return answer
    stream = await disconnect.cancel_on_disconnect(request, responses.open_stream(events, shape))
    return StreamingResponse(
        sse.encode(stream, state.settings.stream_keepalive_s, named=True),
        media_type="text/event-stream",
        headers=_STREAM_HEADERS,
    )


# Relayed as sent, but for the end user's ids: they stay in the gateway, as for chat.
_NOT_RELAYED = {"user", "safety_identifier"}


async def _relay(
    endpoint: RelayEndpoint,
    body: p.CompletionRequest | p.EmbeddingRequest,
    request: Request,
    chat: ChatService,
    stream: bool,
) -> Any:
    # A memory-off id is its model here: these endpoints never touch a profile.
    served, _memory_off = await chat.resolve_model(body.model)
    sent = body.model_dump(exclude_unset=True, exclude=_NOT_RELAYED) | {"model": served}
    if not stream:
        answer = await disconnect.cancel_on_disconnect(request, chat.backend.relay(endpoint, sent))
        return JSONResponse(_as_served(answer, body.model))
    chunks = await disconnect.cancel_on_disconnect(
        request, chat.backend.relay_stream(endpoint, sent)
    )
    renamed = (_as_served(chunk, body.model) async for chunk in chunks)
    return StreamingResponse(
        sse.encode(renamed), media_type="text/event-stream", headers=_STREAM_HEADERS
    )


def _as_served(answer: dict[str, Any], model: str) -> dict[str, Any]:
    """The upstream's answer under the model id the client asked for (an upstream's own id
    may be a file path)."""
    return answer | {"model": model} if "model" in answer else answer


@router.post("/completions", responses=_errors)
async def create_completion(
    body: p.CompletionRequest, request: Request, _principal: ChatPrincipalDep, chat: ChatDep
) -> Any:
    """Relayed to the upstream as sent (legacy text completions), without the profile; 404 on
    the embedded backend or an upstream that does not serve it."""
    return await _relay("completions", body, request, chat, body.stream)


@router.post("/embeddings", responses=_errors)
async def create_embeddings(
    body: p.EmbeddingRequest, request: Request, _principal: ChatPrincipalDep, chat: ChatDep
) -> Any:
    """Relayed to the upstream as sent, without the profile; 404 on the embedded backend or an
    upstream that does not serve it."""
    return await _relay("embeddings", body, request, chat, stream=False)
