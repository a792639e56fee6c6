"""A chat turn's events (server/chat/events.py) in the OpenAI wire types: one whole response, or
stream chunks. Nothing here calls back into the chat domain."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from server import metrics
from server.chat.events import (
    ChoiceDone,
    ChoiceStarted,
    ProfileView,
    ReplyDelta,
    ToolCallDelta,
    TurnDone,
    TurnEvent,
)
from server.openai import protocol as p

T = TypeVar("T")


def rlpa_extension(done: TurnDone) -> p.RLPAProfile | None:
    """The `rlpa` object of a turn's response: on a turn that keeps a profile (whether it
    changed), or that asked for the profile; None on any other."""
    view: ProfileView | None = done.profile
    if view is None and done.memory_changed is None:
        return None
    return p.RLPAProfile(
        profile=None if view is None else view.traits,
        version=None if view is None else view.version,
        changed=bool(done.memory_changed),
    )


def _usage(done: TurnDone) -> p.UsageInfo:
    return p.UsageInfo(
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        total_tokens=done.prompt_tokens + done.completion_tokens,
    )


async def complete(events: AsyncIterator[TurnEvent], model: str) -> p.ChatCompletionResponse:
    parts: dict[int, list[str]] = {}
    calls: dict[int, list[p.ToolCall]] = {}
    choices: list[p.ChatCompletionResponseChoice] = []
    response: p.ChatCompletionResponse | None = None
    async for event in events:  # to the end: the turn is over after TurnDone
        if isinstance(event, ReplyDelta):
            parts.setdefault(event.index, []).append(event.text)
        elif isinstance(event, ToolCallDelta):
            function = p.FunctionCall(name=event.name, arguments=event.arguments)
            calls.setdefault(event.index, []).append(p.ToolCall(id=event.id, function=function))
        elif isinstance(event, ChoiceDone):
            text = "".join(parts.pop(event.index, []))
            called = calls.pop(event.index, None)
            choices.append(
                p.ChatCompletionResponseChoice(
                    index=event.index,
                    # As OpenAI answers: no content beside tool calls unless the model wrote some
                    message=p.ResponseMessage(
                        content=None if called and not text else text, tool_calls=called
                    ),
                    finish_reason=event.finish_reason,
                )
            )
        elif isinstance(event, TurnDone):
            response = p.ChatCompletionResponse(
                model=model, choices=choices, usage=_usage(event), rlpa=rlpa_extension(event)
            )
    if response is None:
        raise RuntimeError("the chat turn ended without TurnDone")
    return response


@dataclass(frozen=True, kw_only=True)
class StreamShape:
    """What the request says of its stream, beside the turn's events."""

    completion_id: str
    model: str
    n: int
    include_usage: bool
    started: float  # time.monotonic() when the request arrived, for TIME_TO_FIRST_TOKEN


async def open_stream(
    events: AsyncIterator[TurnEvent], shape: StreamShape
) -> AsyncIterator[p.ChatCompletionStreamResponse]:
    """The turn's chunks, returned once the backend has begun to answer choice 0.

    The one peek on the streaming path: a backend that is down or refuses the request still gets
    a proper HTTP status instead of a 200 stream. From here on the role chunk goes out at once,
    while the model writes the hidden block; later failures are error events.
    """
    first = await anext(events)
    return _chunks(_prepend(first, events), shape)


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item


async def _chunks(
    events: AsyncIterator[TurnEvent], shape: StreamShape
) -> AsyncIterator[p.ChatCompletionStreamResponse]:
    created = int(time.time())

    def chunk(
        index: int,
        delta: p.DeltaMessage,
        finish_reason: str | None = None,
        rlpa: p.RLPAProfile | None = None,
    ) -> p.ChatCompletionStreamResponse:
        choice = p.ChatCompletionResponseStreamChoice(
            index=index, delta=delta, finish_reason=finish_reason
        )
        return p.ChatCompletionStreamResponse(
            id=shape.completion_id, created=created, model=shape.model, choices=[choice], rlpa=rlpa
        )

    first_visible = True
    last: ChoiceDone | None = None  # the last choice's end: the turn's last chunk but one
    async for event in events:
        if isinstance(event, ChoiceStarted):
            yield chunk(event.index, p.DeltaMessage(role="assistant", content=""))
        elif isinstance(event, ReplyDelta):
            if first_visible:
                elapsed = time.monotonic() - shape.started
                metrics.TIME_TO_FIRST_TOKEN.labels(shape.model).observe(elapsed)
                first_visible = False
            yield chunk(event.index, p.DeltaMessage(content=event.text))
        elif isinstance(event, ToolCallDelta):
            # A call goes out whole, in the one delta OpenAI splits over several.
            function = p.DeltaFunctionCall(name=event.name, arguments=event.arguments)
            call = p.DeltaToolCall(
                index=event.call_index, id=event.id, type="function", function=function
            )
            yield chunk(event.index, p.DeltaMessage(tool_calls=[call]))
        elif isinstance(event, ChoiceDone) and event.index < shape.n - 1:
            yield chunk(event.index, p.DeltaMessage(), event.finish_reason)
        elif isinstance(event, ChoiceDone):
            # Held until the turn is done (its profile written): the client's next turn, once
            # this one has ended, reads what it stored.
            last = event
        elif isinstance(event, TurnDone):
            rlpa = rlpa_extension(event)
            if last is not None:
                ended = None if shape.include_usage else rlpa
                yield chunk(last.index, p.DeltaMessage(), last.finish_reason, ended)
            if shape.include_usage:
                yield p.ChatCompletionStreamResponse(
                    id=shape.completion_id,
                    created=created,
                    model=shape.model,
                    choices=[],
                    usage=_usage(event),
                    rlpa=rlpa,
                )
