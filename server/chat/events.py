"""What a chat turn yields, in order: for each choice its start, its reply text and its end; then
the end of the turn. The wire layer renders these and nothing else (server/openai/render.py).

    ChoiceStarted(0) (ReplyDelta(0) | ToolCallDelta(0))* ChoiceDone(0) ... ChoiceStarted(n-1)
    ... TurnDone

A turn that fails raises instead of yielding the rest; before ChoiceStarted(0) nothing was
generated, so the failure keeps its own status.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ChoiceStarted:
    """The backend took the choice and began to answer (the hidden block comes first)."""

    index: int


@dataclass(frozen=True, kw_only=True)
class ReplyDelta:
    """Visible reply text of one choice."""

    index: int
    text: str


@dataclass(frozen=True, kw_only=True)
class ToolCallDelta:
    """One whole tool call of one choice (docs/tools.md): its position among the choice's calls,
    its id, the tool's name and the arguments as JSON text."""

    index: int
    call_index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, kw_only=True)
class ChoiceDone:
    """The choice's reply is complete. `finish_reason` is OpenAI's: "stop" (the model ended, or
    a stop string came), "tool_calls" (the model called tools) or "length" (the reply reached
    max_tokens, or the hidden block its own bound). Tokens count the whole output, hidden block
    included."""

    index: int
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, kw_only=True)
class ProfileView:
    """The profile a turn leaves behind, for a client that asked to see it."""

    traits: list[str]
    version: int


@dataclass(frozen=True, kw_only=True)
class TurnDone:
    """Every choice is done and the profile write settled (or, write-behind, announced)."""

    prompt_tokens: int
    completion_tokens: int
    profile: ProfileView | None  # only for a turn that asked for it (return_profile)
    # Whether the turn changed the user's stored profile (with write-behind: a change is being
    # written); None for a turn that keeps no profile (no user, a temporary chat, opted out).
    memory_changed: bool | None = None


TurnEvent = ChoiceStarted | ReplyDelta | ToolCallDelta | ChoiceDone | TurnDone
