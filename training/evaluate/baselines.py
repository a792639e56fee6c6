"""Memories that need no model, run beside every model on the transfer set: a notebook.

`echo` stores every user message verbatim, one trait per message; `echo1` stores each message
cut to its first statement. Neither replies (their replies are empty and not scored). A metric
that they pass as well as a trained model measures keyword recall, not what the model learnt:
`rlpa eval --transfer` always runs both, and reports each model's per-user difference to them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

Notebook = Literal["echo", "echo1"]
ECHO: Notebook = "echo"
ECHO1: Notebook = "echo1"
BASELINES: tuple[Notebook, ...] = (ECHO, ECHO1)
"""System kinds (and the names they run under) of the two notebooks."""

# The first statement: up to the first sentence end (. ! ? then a space or the end) or newline.
# Simple on purpose: "St. Ives" is cut after "St.", which a notebook would do too.
_FIRST_STATEMENT = re.compile(r".*?(?:[.!?](?=\s|$)|(?=\n))", re.S)


def first_statement(message: str) -> str:
    """`message` up to and including its first sentence end (the whole message if it has none)."""
    text = message.strip()
    found = _FIRST_STATEMENT.match(text)
    return (found.group(0) if found else text).strip()


class EchoAgent:
    """A `ChatAgent` that keeps every user message it is sent (or its first statement) as the
    profile, in order, and replies nothing. No model, no network."""

    def __init__(self, name: str, *, first_only: bool = False) -> None:
        self.name = name
        self.first_only = first_only
        self._profiles: dict[str, list[str]] = {}

    def reset(self, user_id: str) -> None:
        self._profiles.pop(user_id, None)

    def turn(
        self, user_id: str, history: Sequence[Mapping[str, str]]
    ) -> tuple[str, list[str] | None]:
        message = next(m["content"] for m in reversed(history) if m["role"] == "user")
        trait = first_statement(message) if self.first_only else message
        profile = self._profiles.setdefault(user_id, [])
        profile.append(trait)
        return "", list(profile)

    def close(self) -> None:
        self._profiles.clear()
