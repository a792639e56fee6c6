"""A chat turn's spans, when tracing is on (server/tracing.py): one span for the turn, and under
it one for the profile read, one for each call to the model and one for the profile write, in
that order (the write starts while the model is still writing the reply).

A turn that is not traced has no trace (None) and goes through none of this: every function here
takes the turn's trace and does nothing without one.

Spans are started and ended explicitly, never made the current context: a turn is an async
generator whose steps run in whichever task reads it next, and a context attached in one step
could not be detached in another. Attributes name the end user only by their pseudonym, as the
access log does (server/pseudonyms.py), and hold no message, reply or trait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server import tracing
from server.backends.base import BackendStream, Finish
from server.chat.events import TurnDone, TurnEvent
from server.profiles.state import ProfileState
from server.pseudonyms import Pseudonyms

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from server.chat.service import TurnRequest
    from server.chat.writes import Stored

TURN, READ, MODEL, WRITE = "chat turn", "profile read", "model call", "profile write"


@dataclass(frozen=True)
class TurnTrace:
    """A traced turn: its span, and the tracer its children come from."""

    tracer: Tracer
    span: Span

    def child(self, name: str, attributes: dict[str, AttributeValue] | None = None) -> Span:
        from opentelemetry.trace import set_span_in_context

        context = set_span_in_context(self.span)
        return self.tracer.start_span(name, context, attributes=attributes)


async def traced_turn(
    tracer: Tracer,
    request: TurnRequest,
    request_id: str,
    run: Callable[[TurnTrace], AsyncGenerator[TurnEvent, None]],
) -> AsyncIterator[TurnEvent]:
    """The events of `run(trace)`, as they are, under the turn's span. The span starts with the
    turn's first step (under the client's trace, when its request continues one) and ends with
    its TurnDone (outcome ok), its failure (error, recorded) or its reader leaving first
    (disconnected)."""
    from opentelemetry.trace import SpanKind

    span = tracer.start_span(
        TURN,
        kind=SpanKind.SERVER,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request.model,
            "rlpa.request_id": request_id,
            "rlpa.stream": request.stream,
        },
    )
    outcome = "disconnected"
    try:
        async with aclosing(run(TurnTrace(tracer, span))) as events:
            async for event in events:
                if isinstance(event, TurnDone):
                    outcome = "ok"
                    _note_done(span, event)
                    _end(span, outcome)
                yield event
    except Exception as exc:
        outcome = "error"
        _failed(span, exc)
        raise
    finally:
        if span.is_recording():
            _end(span, outcome)


def note_user(trace: TurnTrace | None, pseudonyms: Pseudonyms, user: str) -> None:
    if trace is not None:
        trace.span.set_attribute("enduser.pseudo.id", pseudonyms.of(user))


async def profile_read(
    trace: TurnTrace | None, read: Awaitable[ProfileState | None]
) -> ProfileState | None:
    """`await read`, under a span; the version read goes on the turn's."""
    if trace is None:
        return await read
    span = trace.child(READ)
    try:
        state = await read
        if state is not None:
            span.set_attribute("rlpa.profile.version_read", state.version)
            trace.span.set_attribute("rlpa.profile.version_read", state.version)
    except Exception as exc:
        _failed(span, exc)
        raise
    finally:
        span.end()
    return state


def model_call(
    trace: TurnTrace | None, stream: BackendStream, *, model: str, choice: int
) -> BackendStream:
    """`stream` as it is, under a span from its request to its Finish (or failure); the
    request carries the span's trace context."""
    if trace is None:
        return stream
    attributes: dict[str, AttributeValue] = {"gen_ai.request.model": model, "rlpa.choice": choice}
    return _traced_stream(trace.child(MODEL, attributes), stream)


async def _traced_stream(span: Span, stream: BackendStream) -> BackendStream:
    try:
        with tracing.calling(span):  # the first step opens the request (with its retries)
            event = await anext(stream)
        while not isinstance(event, Finish):
            event = await stream.asend((yield event))  # a STOP goes on to the backend
        span.set_attributes(
            {
                "gen_ai.response.finish_reasons": [event.reason],
                "gen_ai.usage.input_tokens": event.prompt_tokens,
                "gen_ai.usage.output_tokens": event.completion_tokens,
            }
        )
        yield event
    except Exception as exc:
        _failed(span, exc)
        raise
    finally:
        await stream.aclose()
        span.end()


def profile_write(trace: TurnTrace | None, write: asyncio.Future[Stored] | None) -> None:
    """A span from now until `write` settles, with the version it wrote or its failure. With
    write-behind it may end after the turn's."""
    if trace is None or write is None:
        return
    span, turn = trace.child(WRITE), trace.span

    def settled(done: asyncio.Future[Stored]) -> None:
        if done.cancelled():
            span.set_attribute("rlpa.outcome", "cancelled")
        elif (exc := done.exception()) is not None:
            _failed(span, exc)
        elif (state := done.result().state) is not None:
            span.set_attribute("rlpa.profile.version_written", state.version)
            if turn.is_recording():
                turn.set_attribute("rlpa.profile.version_written", state.version)
        else:
            span.set_attribute("rlpa.outcome", "erased")  # the user was erased meanwhile
        span.end()

    write.add_done_callback(settled)


def _note_done(span: Span, done: TurnDone) -> None:
    span.set_attributes(
        {
            "gen_ai.usage.input_tokens": done.prompt_tokens,
            "gen_ai.usage.output_tokens": done.completion_tokens,
        }
    )
    if done.memory_changed is not None:
        span.set_attribute("rlpa.memory_changed", done.memory_changed)


def _failed(span: Span, exc: BaseException) -> None:
    """Recorded on the span; an error status only for what the gateway answers with a 5xx (a
    client's mistake, a 4xx, is not the server's error)."""
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    if getattr(exc, "status_code", 500) >= 500:
        span.set_status(Status(StatusCode.ERROR, str(exc)))


def _end(span: Span, outcome: str) -> None:
    span.set_attribute("rlpa.outcome", outcome)
    span.end()
