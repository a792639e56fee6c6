"""Tool calls and JSON replies in the RLPA format: how they are shown to the model, written by it
and read back (docs/tools.md).

A turn that may call tools still writes its `<profile>` block first; then, in place of the
`<response>` block, one `<tool_call>` block per call, holding the call as JSON (the layout
Hermes-style models such as Qwen are trained on):

    <profile>
    - lives in Lyon
    </profile>

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Lyon"}}
    </tool_call>

The tools are listed in the system message as one signature line each (their schemas hold the
arguments through the grammar, server.rlpa.grammar, so the prompt stays short for a small model
with a short context); earlier calls are shown in the assistant turns that made them, and tool
results as `<tool_response>` blocks in a user turn, as Hermes-style chat templates show them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_TAGS = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
MAX_TOOL_CALLS = 8
"""Calls one output may make when parallel calls are allowed."""
_DESCRIPTION_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # a JSON schema


@dataclass(frozen=True, kw_only=True)
class ToolUse:
    """The tools a turn offers and how it may use them (OpenAI's tool_choice, parallel calls)."""

    tools: tuple[Tool, ...]
    required: bool = False  # tool_choice "required", or a named function
    only: str | None = None  # the named function: the one tool that may be called
    parallel: bool = True

    @property
    def callable(self) -> tuple[Tool, ...]:
        return tuple(t for t in self.tools if self.only is None or t.name == self.only)


@dataclass(frozen=True, kw_only=True)
class JsonReply:
    """The reply must be JSON (OpenAI's response_format): an object, or a value of `schema`."""

    schema: Mapping[str, Any] | None = None


def instructions(tools: ToolUse | None, reply: JsonReply | None) -> str:
    """The system message's section on tools and the reply's format ("" when neither)."""
    parts = []
    if tools is not None:
        if tools.only is not None:
            when = f"This turn, call {tools.only}."
        elif tools.required:
            when = "This turn, call at least one tool."
        else:
            when = "Call a tool only when the user's request needs one; otherwise reply."
        lines = "\n".join(_signature(tool) for tool in tools.callable)
        parts.append(
            "You can call tools. After the <profile> block, instead of the <response> block, "
            "write one <tool_call> block for each call, with the tool's name and arguments as "
            "JSON:\n<tool_call>\n"
            '{"name": "tool_name", "arguments": {"argument": "value"}}\n</tool_call>\n'
            f"{when} The tools:\n{lines}"
        )
    if reply is not None:
        text = "Write the reply in the <response> block as JSON"
        if reply.schema is None:
            parts.append(text + ": one JSON object.")
        else:
            parts.append(f"{text} that follows this JSON schema:\n{json.dumps(reply.schema)}")
    return "\n\n".join(parts)


def render_tool_calls(calls: Sequence[tuple[str, str]]) -> str:
    """Calls (name, arguments as JSON text) as the model writes them, for assistant turns."""
    return "\n".join(
        f"{TOOL_CALL_OPEN}\n"
        + json.dumps({"name": name, "arguments": _arguments(arguments)}, ensure_ascii=False)
        + f"\n{TOOL_CALL_CLOSE}"
        for name, arguments in calls
    )


def render_tool_results(results: Sequence[str]) -> str:
    """Tool results, in the order given, as the user turn that shows them to the model."""
    return "\n".join(f"<tool_response>\n{result}\n</tool_response>" for result in results)


def read_tool_call(text: str, tools: ToolUse) -> tuple[str, str] | None:
    """A call the model wrote (the text between the tags): its tool's name and its arguments as
    compact JSON text; None when it is not a call of a tool the turn may call."""
    try:
        call = json.loads(text)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    if call["name"] not in {tool.name for tool in tools.callable}:
        return None
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return call["name"], json.dumps(arguments, ensure_ascii=False)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # shown as the client sent it


def _signature(tool: Tool) -> str:
    properties = tool.parameters.get("properties")
    required = set(tool.parameters.get("required") or [])
    params = []
    if isinstance(properties, Mapping):
        for name, schema in properties.items():
            mark = "" if name in required else "?"
            params.append(f"{name}{mark}: {_type(schema)}")
    description = (tool.description.strip().splitlines() or [""])[0][:_DESCRIPTION_CHARS]
    line = f"- {tool.name}({', '.join(params)})"
    return f"{line}: {description}" if description else line


def _type(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return "any"
    if isinstance(schema.get("enum"), list):
        return " | ".join(json.dumps(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(_type(option) for option in schema[key])
    if isinstance(schema.get("$ref"), str):
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(one) for one in kind)
    if kind == "array":
        return f"{_type(schema.get('items'))}[]"
    return str(kind) if kind else "any"
