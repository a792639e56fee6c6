"""Open WebUI's own tasks, recognised when they come to the main model: served with memory off
and their reply held to the JSON the task asks for (docs/clients.md, "Open WebUI").

After a turn Open WebUI asks the chat's model for a title, tags and follow-up suggestions (and,
where enabled, search queries, an image prompt or an autocompletion) as ordinary chat
completions that carry the person's identity headers. Nothing in such a request says it is a
task but its prompt: one user message, made from one of Open WebUI's templates, that begins
with `### Task:` and quotes the chat in a `<chat_history>` block. A person's own turn does not
have that shape: after the first turn the request holds the earlier replies, and the one
template Open WebUI wraps a person's message in that also begins with `### Task:` (its RAG
template, for a chat with files or web search) quotes a `<context>`, not the chat.

The rule: the request's messages, system and developer ones aside, are one user message whose
text begins with `### Task:` and holds a `<chat_history>` ... `</chat_history>` block.

The JSON a task asks for is read from the first example object in its prompt before the quoted
chat (`{ "title": "..." }`), so a custom template that keeps the key keeps the schema; a task
whose key is not one of Open WebUI's, or that shows none, is served with memory off and its
reply left free. Each schema bounds its strings and lists so that the JSON ends within the
reply's default bound (RLPA_DEFAULT_MAX_TOKENS): a cut reply would not parse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server import rlpa

TASK_HEADING = "### Task:"
HISTORY_OPEN, HISTORY_CLOSE = "<chat_history>", "</chat_history>"
_OPERATOR_ROLES = ("system", "developer")
# The first key of a JSON object the prompt shows: `{ "title": ...`, `{\n    "prompt": ...`.
_EXAMPLE_KEY = re.compile(r'\{\s*"([A-Za-z_]+)"\s*:')


def _text(max_chars: int, min_chars: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": max_chars}


def _texts(max_items: int, max_chars: int, min_items: int = 1) -> dict[str, Any]:
    return {
        "type": "array",
        "items": _text(max_chars),
        "minItems": min_items,
        "maxItems": max_items,
    }


def _object(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: value}, "required": [key]}


# Open WebUI 0.12.4's task templates (open_webui/config.py), by the key their JSON holds, and
# the bounds of what it asks for: a 2-4 word title, 1-3 broad and 1-3 specific tags, 3-5
# follow-ups, 0-3 search queries, an image prompt, a short completion ("" when unsure).
TASK_SCHEMAS: Mapping[str, Mapping[str, Any]] = {
    "title": _object("title", _text(60)),
    "tags": _object("tags", _texts(6, 40)),
    "follow_ups": _object("follow_ups", _texts(5, 150)),
    "queries": _object("queries", _texts(3, 100, min_items=0)),
    "prompt": _object("prompt", _text(600)),
    "text": _object("text", _text(200, min_chars=0)),
}


@dataclass(frozen=True, kw_only=True)
class ClientTask:
    """A request recognised as a client's own task (no person is talking)."""

    key: str | None  # the key of the JSON the task asks for; None: none shown
    reply: rlpa.JsonReply | None  # the task's JSON, where its key is a known one


def recognise(history: Sequence[Mapping[str, str]]) -> ClientTask | None:
    """The task a request's messages are, or None for a person's turn (the rule above)."""
    said = [m for m in history if m["role"] not in _OPERATOR_ROLES]
    if len(said) != 1 or said[0]["role"] != "user":
        return None
    prompt = said[0]["content"].lstrip()
    opened = prompt.find(HISTORY_OPEN)
    if not prompt.startswith(TASK_HEADING) or opened < 0:
        return None
    if prompt.find(HISTORY_CLOSE, opened) < 0:
        return None
    example = _EXAMPLE_KEY.search(prompt, 0, opened)
    key = example[1] if example else None
    schema = TASK_SCHEMAS.get(key) if key else None
    return ClientTask(key=key, reply=rlpa.JsonReply(schema=schema) if schema else None)
