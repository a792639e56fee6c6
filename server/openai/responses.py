"""`/v1/responses` for text turns: the request as a chat turn (the same turn, profile read and
written, as /v1/chat/completions), its events as a response or as the Responses API's stream.

Served: `input` as a string or a list of text messages, `instructions`, `max_output_tokens`,
`temperature`, `top_p`, `user` / `safety_identifier`, `stream`, `metadata` (echoed), and the
`rlpa` extension. Refused with 400, by name: what needs state kept between requests
(`previous_response_id`, `conversation`, `background`, stored `prompt` templates: nothing is
kept to continue from, so send the whole conversation as `input`), tools, structured `text`
formats (both served on /v1/chat/completions) and input items that are not text messages.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.backends.base import SamplingParams
from server.chat.events import ChoiceDone, ChoiceStarted, ReplyDelta, TurnDone, TurnEvent
from server.chat.service import TurnRequest
from server.db import utcnow
from server.errors import BadRequestError
from server.openai import protocol_responses as r
from server.openai.render import rlpa_extension

logger = logging.getLogger(__name__)

# Tuples, not sets: client JSON may put a list where a string goes, and a list cannot be hashed.
_ROLES = ("system", "developer", "user", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "text")
_STATELESS = "this gateway keeps no responses to continue from: send the whole conversation"
# Fields whose every value asks for something the gateway does not do.
_REFUSED = {
    "previous_response_id": _STATELESS + " as `input`",
    "conversation": _STATELESS + " as `input`",
    "background": "responses are answered while the client waits",
    "prompt": "stored prompt templates are not kept here",
    "tools": "tools are served on /v1/chat/completions",
}
# Accepted, and what they ask for is not done: logged.
_IGNORED = {"store": "nothing is stored to be fetched by id (the response says store: false)"}


def turn_request(
    body: r.ResponsesRequest,
    supported: frozenset[str],
    arrived_at: datetime | None = None,
    *,
    user: str | None,
) -> TurnRequest:
    """The chat turn a Responses request asks for; BadRequestError for what it cannot serve.

    `user` is the end user the request names (server/openai/identity.py)."""
    _refuse_unserved(body)
    history = [{"role": "system", "content": body.instructions}] if body.instructions else []
    history += _messages(body.input)
    extra = {name: value for name, value in (body.model_extra or {}).items() if name in supported}
    for name in (body.model_extra or {}).keys() - extra.keys():
        logger.info("ignoring unknown request field %r", name)
    return TurnRequest(
        model=body.model,
        history=history,
        params=SamplingParams(
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            extra=extra,
        ),
        user=user,
        remember=body.rlpa.mode == "on",
        return_profile=body.rlpa.return_profile,
        arrived_at=arrived_at or utcnow(),
        stream=body.stream,
    )


def _refuse_unserved(body: r.ResponsesRequest) -> None:
    for name, reason in _REFUSED.items():
        if getattr(body, name) not in (None, False, []):
            raise BadRequestError(
                f"'{name}' is not supported on /v1/responses: {reason}.",
                param=name,
                code="unsupported_parameter",
            )
    if body.tool_choice not in (None, "none", "auto"):
        raise BadRequestError(
            f"'tool_choice' is not supported on /v1/responses: {_REFUSED['tools']}.",
            param="tool_choice",
            code="unsupported_parameter",
        )
    text_format = (body.text or {}).get("format")
    if text_format is not None and (
        not isinstance(text_format, dict) or text_format.get("type") != "text"
    ):
        raise BadRequestError(
            "Only text output is served on /v1/responses; structured output "
            "(`response_format`) is served on /v1/chat/completions.",
            param="text.format",
            code="unsupported_parameter",
        )
    for name, reason in _IGNORED.items():
        if getattr(body, name):
            logger.info("ignoring request field %r: %s", name, reason)


def _messages(given: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not given:
        raise BadRequestError("'input' holds no message.", param="input", code="invalid_value")
    return [_message(index, item) for index, item in enumerate(given)]


def _message(index: int, item: dict[str, Any]) -> dict[str, str]:
    """One input item as a chat message: a text message, with string or text-part content."""
    kind, role, content = item.get("type", "message"), item.get("role"), item.get("content")
    if kind != "message":
        raise BadRequestError(
            f"Input item {index} is a {kind!r} item: only text messages are served on "
            "/v1/responses (tool calls and their outputs are on /v1/chat/completions).",
            param=f"input.{index}",
            code="unsupported_input",
        )
    if role not in _ROLES:
        raise BadRequestError(
            f"Input item {index} must have the role system, developer, user or assistant.",
            param=f"input.{index}.role",
            code="invalid_value",
        )
    if isinstance(content, str):
        return {"role": role, "content": content}
    texts: list[str] = []
    for part in content if isinstance(content, list) else [None]:
        text = _text_of(part)
        if text is None:
            raise BadRequestError(
                f"Input item {index} holds content that is not text: only text parts "
                "(input_text, output_text) are served on /v1/responses.",
                param=f"input.{index}.content",
                code="unsupported_input",
            )
        texts.append(text)
    return {"role": role, "content": "".join(texts)}


def _text_of(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
        return None
    text = part.get("text")
    return text if isinstance(text, str) else None


@dataclass(frozen=True, kw_only=True)
class ResponseShape:
    """What the request says of its response, beside the turn's events."""

    body: r.ResponsesRequest
    response_id: str
    message_id: str
    created_at: int

    @classmethod
    def of(cls, body: r.ResponsesRequest) -> ResponseShape:
        return cls(
            body=body,
            response_id=f"resp_{uuid.uuid4().hex}",
            message_id=f"msg_{uuid.uuid4().hex}",
            created_at=int(time.time()),
        )

    def response(self, **fields: Any) -> r.ResponseObject:
        body = self.body
        return r.ResponseObject(
            id=self.response_id,
            created_at=self.created_at,
            instructions=body.instructions,
            max_output_tokens=body.max_output_tokens,
            metadata=body.metadata or {},
            model=body.model,
            temperature=body.temperature,
            top_p=body.top_p,
            **fields,
        )

    def message(self, text: str | None, status: r.ItemStatus) -> r.OutputMessage:
        content = [] if text is None else [r.OutputText(text=text)]
        return r.OutputMessage(id=self.message_id, status=status, content=content)

    def finished(self, text: str, choice: ChoiceDone, done: TurnDone) -> r.ResponseObject:
        """The whole response, once the turn is done."""
        cut = choice.finish_reason == "length"
        status: r.ItemStatus = "incomplete" if cut else "completed"
        return self.response(
            status=status,
            incomplete_details=r.IncompleteDetails(reason="max_output_tokens") if cut else None,
            output=[self.message(text, status)],
            usage=r.ResponseUsage(
                input_tokens=done.prompt_tokens,
                output_tokens=done.completion_tokens,
                total_tokens=done.prompt_tokens + done.completion_tokens,
            ),
            rlpa=rlpa_extension(done),
        )


async def complete(events: AsyncIterator[TurnEvent], shape: ResponseShape) -> r.ResponseObject:
    parts: list[str] = []
    choice: ChoiceDone | None = None
    response: r.ResponseObject | None = None
    async for event in events:  # to the end: the turn is over after TurnDone
        if isinstance(event, ReplyDelta):
            parts.append(event.text)
        elif isinstance(event, ChoiceDone):
            choice = event
        elif isinstance(event, TurnDone) and choice is not None:
            response = shape.finished("".join(parts), choice, event)
    if response is None:
        raise RuntimeError("the chat turn ended without TurnDone")
    return response


async def open_stream(
    events: AsyncIterator[TurnEvent], shape: ResponseShape
) -> AsyncIterator[r.ResponseStreamEvent]:
    """The response's stream events, returned once the backend has begun to answer: errors
    before that keep their HTTP status (as render.open_stream)."""
    first = await anext(events)
    return _stream(first, events, shape)


async def _stream(
    first: TurnEvent, events: AsyncIterator[TurnEvent], shape: ResponseShape
) -> AsyncIterator[r.ResponseStreamEvent]:
    numbers = itertools.count()
    parts: list[str] = []
    choice: ChoiceDone | None = None
    for kind in r.OPENING:
        yield r.ResponseEvent(
            type=kind, sequence_number=next(numbers), response=shape.response(status="in_progress")
        )
    yield r.OutputItemEvent(
        type="response.output_item.added",
        sequence_number=next(numbers),
        output_index=0,
        item=shape.message(None, "in_progress"),
    )
    yield r.ContentPartEvent(
        type="response.content_part.added",
        sequence_number=next(numbers),
        part=r.OutputText(text=""),
        item_id=shape.message_id,
        output_index=0,
        content_index=0,
    )
    async for event in _prepend(first, events):
        if isinstance(event, ChoiceStarted):
            continue
        if isinstance(event, ReplyDelta):
            parts.append(event.text)
            yield r.OutputTextDeltaEvent(
                sequence_number=next(numbers),
                delta=event.text,
                item_id=shape.message_id,
                output_index=0,
                content_index=0,
            )
        elif isinstance(event, ChoiceDone):
            # Held until the turn is done (its profile written), as a chat stream's last chunk.
            choice = event
        elif isinstance(event, TurnDone) and choice is not None:
            text = "".join(parts)
            final = shape.finished(text, choice, event)
            yield r.OutputTextDoneEvent(
                sequence_number=next(numbers),
                text=text,
                item_id=shape.message_id,
                output_index=0,
                content_index=0,
            )
            yield r.ContentPartEvent(
                type="response.content_part.done",
                sequence_number=next(numbers),
                part=r.OutputText(text=text),
                item_id=shape.message_id,
                output_index=0,
                content_index=0,
            )
            yield r.OutputItemEvent(
                type="response.output_item.done",
                sequence_number=next(numbers),
                output_index=0,
                item=final.output[0],
            )
            yield r.ResponseEvent(
                type="response.completed" if final.status == "completed" else "response.incomplete",
                sequence_number=next(numbers),
                response=final,
            )


async def _prepend(first: TurnEvent, rest: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent]:
    yield first
    async for item in rest:
        yield item
