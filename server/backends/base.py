"""The one protocol every model backend speaks."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one generation. None means "backend default".

    A backend applies `max_tokens` and `stop` to its whole output. In a chat turn's request they
    are the client's, for the visible reply only: the chat service sends the backend the bounds
    of the whole output and applies the client's to the reply (server/chat/reply.py)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Backend-specific extras (e.g. repeat_penalty for llama.cpp) and OpenAI fields that only an
    # upstream can honour (tools, response_format, logprobs...): passed through or refused.
    extra: dict[str, Any] = field(default_factory=dict)
    # The prompt asks for the RLPA output format: a backend that can constrain decoding to it
    # may (the embedded one does, see server.rlpa.grammar).
    rlpa_format: bool = False
    # The format's grammar for this turn when it is not the plain one (rlpa.FORMAT_GBNF): tool
    # calls, a JSON reply or an empty block (server.rlpa.output_grammar).
    grammar: str | None = None


@dataclass
class TextDelta:
    text: str
    tokens: int = 1
    """How many generated tokens this text is (an upstream's delta counts as one)."""


@dataclass
class Finish:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


StreamEvent = TextDelta | Finish


@dataclass(frozen=True)
class StopGeneration:
    """Sent into a backend's stream by a consumer that has read enough (`stream.asend(STOP)`):
    the backend ends the generation now and answers with its Finish, so that the turn still
    has its usage. A backend may ignore it; the consumer then reads on to the Finish."""


STOP = StopGeneration()

BackendStream = AsyncGenerator[StreamEvent, StopGeneration | None]

# The OpenAI routes a backend may serve as they are, without personalisation.
RelayEndpoint = Literal["completions", "embeddings"]


class ChatBackend(Protocol):
    """A chat model: one choice per `stream` call, text deltas then exactly one `Finish`.

    `params.max_tokens` and `params.stop` bound the whole output; the chat service asks for the
    visible reply's bounds itself (server/chat/reply.py)."""

    def stream(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> BackendStream: ...

    async def start(self) -> None:
        """Load or connect; called once by the app's lifespan before serving."""
        ...

    async def list_models(self) -> list[str]: ...

    async def health(self) -> bool: ...

    def supported_extras(self) -> frozenset[str]:
        """Keys of `SamplingParams.extra` this backend honours; others are refused with 400."""
        ...

    async def relay(self, endpoint: RelayEndpoint, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to the model server's `/v1/{endpoint}` as it is and return its JSON
        answer. Raises NotFoundError where no model server serves that endpoint."""
        ...

    async def relay_stream(
        self, endpoint: RelayEndpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """As `relay`, for a streamed answer: returns once the server has accepted the
        request (errors before that keep their status), then yields its chunks."""
        ...

    async def aclose(self) -> None: ...
