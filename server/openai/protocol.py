"""OpenAI wire models, named as vLLM names them; fields in the order of OpenAI's reference.

Unknown request fields are accepted (and logged by the route), never rejected.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# The bounds upstreams hold these in: vLLM and llama.cpp count tokens in 32-bit integers, and
# OpenAI's seed is an int64. Python ints are unbounded, so an unchecked 2**70 reaches the
# upstream (or a 32-bit column) and fails there instead of here.
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Loc = tuple[str | int, ...]


_NOT_UTF8 = PydanticCustomError(
    "string_not_utf8", "Text must be valid UTF-8; it holds a lone surrogate."
)
_NOT_FINITE = PydanticCustomError(
    "number_not_finite", "Numbers must be finite; NaN and Infinity are not JSON."
)
_USER_OBJECT = PydanticCustomError(
    "user_object_without_id",
    "An object `user` must name the end user in a string `id` (as Open WebUI's pipelines send "
    "it); otherwise send `user` as a string.",
)


def _user_id(value: Any) -> Any:
    """The end user's id from `user`: a string as OpenAI sends it, or the `id` of an object
    (Open WebUI's pipelines send the user as {"id", "name", "email", "role"})."""
    if isinstance(value, dict):
        found = value.get("id")
        if not isinstance(found, str):
            raise _USER_OBJECT
        return found
    return value


# `user`: a string, or an object holding its `id` (see _user_id).
EndUserField = Annotated[str | None, BeforeValidator(_user_id)]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable_at(data: Any) -> tuple[Loc, PydanticCustomError] | None:
    """Where decoded JSON holds the first value that cannot be encoded again, and why; or None.

    Python's json module accepts more than JSON: the escape `\\ud800` decodes to a lone
    surrogate, which every UTF-8 encoder after us refuses (the upstream request, PostgreSQL, our
    own responses), and NaN and Infinity decode to floats that strict encoders (httpx's, for the
    upstream request) refuse. A key that cannot be encoded is reported at the object holding it.
    Iterative, so that nesting depth cannot exhaust the stack.
    """
    pending: list[tuple[Loc, Any]] = [((), data)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return loc, _NOT_UTF8
        elif isinstance(value, float):
            if not math.isfinite(value):
                return loc, _NOT_FINITE
        elif isinstance(value, dict):
            if not all(_encodable(key) for key in value if isinstance(key, str)):
                return loc, _NOT_UTF8
            pending.extend(reversed([((*loc, key), item) for key, item in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([((*loc, index), item) for index, item in enumerate(value)]))
    return None


class _Request(BaseModel):
    """A request body: every value in it, unknown fields' included, must encode back to JSON, as
    the body is forwarded upstream and parts of it are stored."""

    @model_validator(mode="before")
    @classmethod
    def _encodable_only(cls, data: Any) -> Any:
        found = _unencodable_at(data)
        if found is not None:
            loc, error = found
            details = InitErrorDetails(type=error, loc=loc, input=None)
            raise ValidationError.from_exception_data(cls.__name__, [details])
        return data


class TextContentPart(BaseModel):
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's
    tool_call_id: str | None = None  # a tool result's

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class FunctionDefinition(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema
    strict: bool | None = None


class ChatCompletionToolsParam(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ChatCompletionNamedFunction(BaseModel):
    name: str


class ChatCompletionNamedToolChoiceParam(BaseModel):
    type: Literal["function"] = "function"
    function: ChatCompletionNamedFunction


ToolChoice = Literal["none", "auto", "required"] | ChatCompletionNamedToolChoiceParam


# Our extension (sent by OpenAI clients as extra_body={"rlpa": {...}}).
class RLPAOptions(BaseModel):
    mode: Literal["on", "off"] = "on"
    return_profile: bool = False


class ChatCompletionRequest(_Request):
    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    function_call: Any = None
    functions: list[Any] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    # Strict: JSON's `true` is not a count.
    max_completion_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX, strict=True)
    n: int = Field(default=1, ge=1, le=8, strict=True)
    parallel_tool_calls: bool | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    response_format: dict[str, Any] | None = None
    # Names the end user when `user` does not (OpenAI's successor to `user`).
    safety_identifier: str | None = None
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX, strict=True)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    tool_choice: ToolChoice | None = None
    tools: list[ChatCompletionToolsParam] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20, strict=True)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: EndUserField = None
    # --- rlpa extensions ---
    rlpa: RLPAOptions = Field(default_factory=RLPAOptions)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RLPAProfile(BaseModel):
    """Our extension on a turn's response (the last chunk of a stream): whether the turn changed
    the end user's stored profile, on every turn that keeps one; the profile after the turn and
    its version too when asked (`rlpa.return_profile`). Fields not given are left out."""

    profile: list[str] | None = None
    version: int | None = None
    changed: bool = False

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if value is not None}


class _CallsWhenAny(BaseModel):
    """A message that says `tool_calls` only when it has some, as OpenAI's do."""

    @model_serializer(mode="wrap")
    def _calls_when_any(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if dumped.get("tool_calls") is None:
            dumped.pop("tool_calls", None)
        return dumped


class ResponseMessage(_CallsWhenAny):
    role: Literal["assistant"] = "assistant"
    content: str | None  # None when the model only called tools
    tool_calls: list[ToolCall] | None = None


class ChatCompletionResponseChoice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: None = None
    finish_reason: str | None


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _now() -> int:
    return int(time.time())


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChatCompletionResponseChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None
    # --- rlpa extensions ---
    rlpa: RLPAProfile | None = None


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class DeltaMessage(_CallsWhenAny):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatCompletionResponseStreamChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: None = None
    finish_reason: str | None = None


class ChatCompletionStreamResponse(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionResponseStreamChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None
    # --- rlpa extensions ---
    rlpa: RLPAProfile | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "rlpa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


# --- /v1/completions and /v1/embeddings: relayed to an upstream as sent, unpersonalised ---


class CompletionRequest(_Request):
    """Declares what the gateway reads; every other field goes upstream as sent."""

    model_config = ConfigDict(extra="allow")

    model: str
    prompt: Any = None
    stream: bool = False
    user: EndUserField = None  # the end user's id stays here, as for chat


class EmbeddingRequest(_Request):
    """Declares what the gateway reads; every other field goes upstream as sent."""

    model_config = ConfigDict(extra="allow")

    input: Any = None
    model: str
    user: EndUserField = None  # the end user's id stays here, as for chat
