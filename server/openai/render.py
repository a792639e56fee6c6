"""A prepared chat turn rendered in the OpenAI wire types: a whole response, or stream chunks.

server.chat yields domain results (text deltas, a Finish, the profile); the wire shape is here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TypeVar

from server import metrics
from server.backends.base import Finish
from server.chat.service import ChatService, ProfileView, Turn
from server.openai import protocol as p

T = TypeVar("T")


def _profile(view: ProfileView | None) -> p.RLPAProfile | None:
    return None if view is None else p.RLPAProfile(profile=view.traits, version=view.version)


def _usage(prompt: int, completion: int) -> p.UsageInfo:
    return p.UsageInfo(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


async def complete(service: ChatService, turn: Turn) -> p.ChatCompletionResponse:
    choices: list[p.ChatCompletionResponseChoice] = []
    prompt_tokens = completion_tokens = 0
    for index in range(turn.n):
        parts: list[str] = []
        finish: Finish | None = None
        async for item in service.choice(turn, index):
            if isinstance(item, Finish):
                finish = item
            else:
                parts.append(item)
        assert finish is not None
        prompt_tokens = finish.prompt_tokens
        completion_tokens += finish.completion_tokens
        choices.append(
            p.ChatCompletionResponseChoice(
                index=index,
                message=p.ResponseMessage(content="".join(parts)),
                finish_reason=finish.reason,
            )
        )
    await service.finish_turn(turn)
    return p.ChatCompletionResponse(
        model=turn.model,
        choices=choices,
        usage=_usage(prompt_tokens, completion_tokens),
        rlpa=_profile(service.rlpa_block(turn)),
    )


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item


async def open_stream(
    service: ChatService, turn: Turn, completion_id: str
) -> AsyncIterator[p.ChatCompletionStreamResponse]:
    """The turn's chunks, returned once the backend has answered choice 0.

    The one peek on the streaming path: a backend that is down or refuses the request still gets
    a proper HTTP status instead of a 200 stream. Later choices fail mid-stream whatever we do.
    """
    choice = service.choice(turn, 0)
    first = await anext(choice)
    return _stream(service, turn, completion_id, _prepend(first, choice))


async def _stream(
    service: ChatService,
    turn: Turn,
    completion_id: str,
    first_choice: AsyncIterator[str | Finish],
) -> AsyncIterator[p.ChatCompletionStreamResponse]:
    created = int(time.time())

    def chunk(
        index: int, delta: p.DeltaMessage, finish_reason: str | None = None
    ) -> p.ChatCompletionStreamResponse:
        return p.ChatCompletionStreamResponse(
            id=completion_id,
            created=created,
            model=turn.model,
            choices=[
                p.ChatCompletionResponseStreamChoice(
                    index=index, delta=delta, finish_reason=finish_reason
                )
            ],
        )

    prompt_tokens = completion_tokens = 0
    first_visible = True
    trailing: list[p.ChatCompletionStreamResponse] = []
    for index in range(turn.n):
        items = first_choice if index == 0 else service.choice(turn, index)
        yield chunk(index, p.DeltaMessage(role="assistant", content=""))
        async for item in items:
            if isinstance(item, Finish):
                prompt_tokens = item.prompt_tokens
                completion_tokens += item.completion_tokens
                last = chunk(index, p.DeltaMessage(), item.reason)
                if index < turn.n - 1:
                    yield last
                else:
                    trailing.append(last)
                continue
            if first_visible:
                metrics.TIME_TO_FIRST_TOKEN.labels(turn.model).observe(
                    time.monotonic() - turn.started
                )
                first_visible = False
            yield chunk(index, p.DeltaMessage(content=item))
    await service.finish_turn(turn)
    if turn.include_usage:
        trailing.append(
            p.ChatCompletionStreamResponse(
                id=completion_id,
                created=created,
                model=turn.model,
                choices=[],
                usage=_usage(prompt_tokens, completion_tokens),
            )
        )
    trailing[-1].rlpa = _profile(service.rlpa_block(turn))
    for final in trailing:
        yield final
