"""The Responses API's wire models (`/v1/responses`), for text turns; fields in the order of
OpenAI's reference, our extensions last. Apart from protocol.py only for size: the chat models
and these share its base, the `user` field and the `rlpa` extension.

Unknown request fields are accepted (and logged by server/openai/responses.py), never rejected.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.openai.protocol import (
    INT32_MAX,
    EndUserField,
    RLPAOptions,
    RLPAProfile,
    _Request,
)


class ResponsesRequest(_Request):
    model_config = ConfigDict(extra="allow")

    background: bool | None = None
    conversation: Any = None
    # A string (one user message) or a list of message items; server/openai/responses.py reads
    # the items, so that one it cannot serve is refused by name.
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX, strict=True)
    metadata: dict[str, str] | None = None
    model: str
    previous_response_id: str | None = None
    prompt: Any = None
    safety_identifier: str | None = None
    store: bool | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    text: dict[str, Any] | None = None
    tool_choice: Any = None
    tools: list[Any] | None = None
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: EndUserField = None
    # --- rlpa extensions ---
    rlpa: RLPAOptions = Field(default_factory=RLPAOptions)


ItemStatus = Literal["in_progress", "completed", "incomplete"]


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    status: ItemStatus
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseObject(BaseModel):
    """A response: what `client.responses.create` returns, and what stream events carry."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete"]
    error: None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    model: str
    output: list[OutputMessage] = Field(default_factory=list)
    parallel_tool_calls: bool = False
    store: bool = False  # nothing is kept to be fetched by id or continued from
    temperature: float | None = None
    tool_choice: Literal["none"] = "none"
    tools: list[Any] = Field(default_factory=list)
    top_p: float | None = None
    usage: ResponseUsage | None = None
    # --- rlpa extensions ---
    rlpa: RLPAProfile | None = None


# Stream events, in the order a stream sends them.


ResponseEventType = Literal[
    "response.created", "response.in_progress", "response.completed", "response.incomplete"
]
OPENING: tuple[ResponseEventType, ...] = ("response.created", "response.in_progress")


class ResponseEvent(BaseModel):
    """The response as it stands: when created, in progress, and at its end."""

    type: ResponseEventType
    sequence_number: int
    response: ResponseObject


class OutputItemEvent(BaseModel):
    type: Literal["response.output_item.added", "response.output_item.done"]
    sequence_number: int
    output_index: int
    item: OutputMessage


class ContentPartEvent(BaseModel):
    type: Literal["response.content_part.added", "response.content_part.done"]
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class OutputTextDeltaEvent(BaseModel):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = Field(default_factory=list)


class OutputTextDoneEvent(BaseModel):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = Field(default_factory=list)


ResponseStreamEvent = (
    ResponseEvent | OutputItemEvent | ContentPartEvent | OutputTextDeltaEvent | OutputTextDoneEvent
)
