"""What the gateway does with each OpenAI chat request field: one table, read in one place.

`turn_request` turns the wire request into the chat domain's `TurnRequest` by this table.

Every declared field of `ChatCompletionRequest` has an entry (a test checks), so a field added to
the wire model must be decided here. Fields the model does not declare follow one rule: passed
upstream when the backend honours them (its own knobs, such as llama.cpp's `top_k`), otherwise
ignored and logged: unknown fields are accepted, not rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.backends.base import SamplingParams
from server.chat.service import TurnRequest
from server.db import utcnow
from server.errors import BadRequestError
from server.openai import protocol as p
from server.openai import tools

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Own:
    """The gateway reads it itself: the turn, or the sampling parameters every backend takes."""


@dataclass(frozen=True)
class Pass:
    """Sent upstream as sent when the backend honours it; refused (400) when it does not."""


@dataclass(frozen=True)
class Refuse:
    """Refused (400) whatever the backend: the gateway could not relay what it asks for."""

    reason: str


@dataclass(frozen=True)
class Ignore:
    """Accepted and logged, never sent upstream."""

    reason: str


Treatment = Own | Pass | Refuse | Ignore

_LOST = "its results cannot be relayed through the profile-aware reply"
_LEGACY = "it is OpenAI's deprecated function calling; send 'tools' and 'tool_choice'"

REQUEST_FIELDS: dict[str, Treatment] = {
    "messages": Own(),
    "model": Own(),
    "frequency_penalty": Own(),
    "function_call": Refuse(_LEGACY),
    "functions": Refuse(_LEGACY),
    "logit_bias": Pass(),
    "logprobs": Refuse(_LOST),
    "max_completion_tokens": Own(),
    "max_tokens": Own(),
    "n": Own(),
    # Tools, tool_choice and response_format are read through the RLPA format
    # (server/openai/tools.py, docs/tools.md): never sent upstream as they are.
    "parallel_tool_calls": Own(),
    "presence_penalty": Own(),
    "response_format": Own(),
    "safety_identifier": Own(),
    "seed": Own(),
    "stop": Own(),
    "stream": Own(),
    "stream_options": Own(),
    "temperature": Own(),
    "tool_choice": Own(),
    "tools": Own(),
    "top_logprobs": Refuse(_LOST),
    "top_p": Own(),
    "user": Own(),
    "rlpa": Own(),
}


def _sent(name: str, value: Any) -> bool:
    """Whether a refused or passed field asks for anything: OpenAI's defaults ask for nothing."""
    return value not in (None, False, [], {})


def upstream_extras(body: p.ChatCompletionRequest, supported: frozenset[str]) -> dict[str, Any]:
    """The request's fields that go upstream beside the sampling parameters, by the table.

    Raises BadRequestError for a refused field, or a passed one the backend cannot honour.
    """
    extras: dict[str, Any] = {}
    for name, treatment in REQUEST_FIELDS.items():
        value = getattr(body, name)
        if isinstance(treatment, Own) or value is None:
            continue
        if isinstance(treatment, Ignore):  # whatever its value: the client asked for something
            logger.info("ignoring request field %r: %s", name, treatment.reason)
        elif not _sent(name, value):
            continue
        elif isinstance(treatment, Refuse):
            raise BadRequestError(
                f"'{name}' is not supported by this gateway: {treatment.reason}.",
                param=name,
                code="unsupported_parameter",
            )
        elif name not in supported:
            raise BadRequestError(
                f"'{name}' is not supported by the configured backend.",
                param=name,
                code="unsupported_parameter",
            )
        else:
            extras[name] = value
    for name, value in (body.model_extra or {}).items():
        if name in supported:
            extras[name] = value
        else:
            logger.info("ignoring unknown request field %r", name)
    return extras


def turn_request(
    body: p.ChatCompletionRequest,
    supported: frozenset[str],
    arrived_at: datetime | None = None,
    *,
    user: str | None,
) -> TurnRequest:
    """The turn the request asks for: the table's own fields mapped, the passed ones as extras.

    `supported` is what the backend honours (`ChatBackend.supported_extras`); `arrived_at` is
    when the gateway received the request (now, if not given); `user` is the end user the
    request names (server/openai/identity.py: `user`, `safety_identifier` or a header).
    """
    return TurnRequest(
        model=body.model,
        history=tools.history(body),
        params=SamplingParams(
            max_tokens=body.max_completion_tokens or body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=body.stop_list(),
            seed=body.seed,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            extra=upstream_extras(body, supported),
        ),
        n=body.n,
        tools=tools.tool_use(body),
        reply_format=tools.reply_format(body),
        user=user,
        remember=body.rlpa.mode == "on",
        return_profile=body.rlpa.return_profile,
        arrived_at=arrived_at or utcnow(),
        stream=body.stream,
    )
