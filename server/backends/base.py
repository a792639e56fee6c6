"""The one protocol every model backend speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SamplingParams:
    """What the client asked for. None means "backend default"."""

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


@dataclass
class TextDelta:
    text: str


@dataclass
class Finish:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


StreamEvent = TextDelta | Finish


class ChatBackend(Protocol):
    """A chat model: one choice per `stream` call, text deltas then exactly one `Finish`."""

    def stream(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> AsyncIterator[StreamEvent]: ...

    async def start(self) -> None:
        """Load or connect; called once by the app's lifespan before serving."""
        ...

    async def list_models(self) -> list[str]: ...

    async def health(self) -> bool: ...

    def supported_extras(self) -> frozenset[str]:
        """Keys of `SamplingParams.extra` this backend honours; others are refused with 400."""
        ...

    async def aclose(self) -> None: ...
