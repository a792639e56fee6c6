"""Parse a whole model output into the profile it inferred and the reply the user sees."""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.rlpa.machine import Machine
from server.rlpa.tools import TOOL_TAGS
from server.rlpa.traits import TAGS

# re.ASCII because IGNORECASE alone lets U+017F (long s) match "s" and U+212A (Kelvin) match "k":
# tags the streaming splitter, which folds ASCII only, would not see.
TAG_PATTERN = re.compile(
    "(" + "|".join(re.escape(tag) for tag in (*TAGS, *TOOL_TAGS)) + ")", re.I | re.A
)


@dataclass(frozen=True)
class ParsedOutput:
    profile: list[str] | None
    """None when the output has no profile block: the caller keeps the stored profile."""
    response: str
    format_ok: bool
    """Both blocks present, profile first, nothing outside them; closing tags may be missing."""
    tool_calls: tuple[str, ...] = ()
    """With `tools`: each `<tool_call>` block's text, in order (server.rlpa.tools reads them)."""


def parse_output(text: str, *, tools: bool = False) -> ParsedOutput:
    machine = Machine(tools=tools)
    reply: list[str] = []
    # re.split with a capturing group alternates text and tags: even indices are text.
    for index, piece in enumerate(TAG_PATTERN.split(text)):
        if machine.done:
            break
        tag = piece.lower() if index % 2 else None
        if tag is not None and tag in machine.tags:
            machine.tag(tag)
        else:  # text, or a tag that means nothing here (inside the reply: text too)
            reply.append(machine.text(piece))
    machine.finish()
    return ParsedOutput(
        machine.profile, "".join(reply).strip(), machine.format_ok, tuple(machine.calls)
    )
