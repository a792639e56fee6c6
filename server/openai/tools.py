"""The request's tools, tool choice, tool messages and response_format in the chat domain's
terms (server.rlpa.tools; the design is docs/tools.md)."""

from __future__ import annotations

from server import rlpa
from server.errors import BadRequestError
from server.openai import protocol as p


def tool_use(body: p.ChatCompletionRequest) -> rlpa.ToolUse | None:
    """The tools the turn may call and how; None when it may call none (none offered, or
    tool_choice "none": then the model is not shown them either)."""
    choice = body.tool_choice
    if not body.tools:
        if choice == "required" or isinstance(choice, p.ChatCompletionNamedToolChoiceParam):
            raise BadRequestError(
                "'tool_choice' asks for a tool call, but 'tools' is empty.",
                param="tool_choice",
                code="invalid_value",
            )
        return None
    if choice == "none":
        return None
    tools = tuple(
        rlpa.Tool(
            name=tool.function.name,
            description=tool.function.description or "",
            parameters=tool.function.parameters or {},
        )
        for tool in body.tools
    )
    only = None
    if isinstance(choice, p.ChatCompletionNamedToolChoiceParam):
        only = choice.function.name
        if only not in {tool.name for tool in tools}:
            raise BadRequestError(
                f"'tool_choice' names the function '{only}', which is not among 'tools'.",
                param="tool_choice",
                code="invalid_value",
            )
    return rlpa.ToolUse(
        tools=tools,
        required=choice == "required" or only is not None,
        only=only,
        parallel=body.parallel_tool_calls is not False,
    )


def reply_format(body: p.ChatCompletionRequest) -> rlpa.JsonReply | None:
    """response_format: a JSON reply (an object, or a value of the given schema), or None."""
    given = body.response_format
    kind = None if given is None else given.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return rlpa.JsonReply()
    spec = given.get("json_schema") if kind == "json_schema" and given is not None else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if kind == "json_schema" and isinstance(schema, dict):
        return rlpa.JsonReply(schema=schema)
    raise BadRequestError(
        "'response_format' must be {'type': 'text'}, {'type': 'json_object'} or "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}.",
        param="response_format",
        code="invalid_value",
    )


def history(body: p.ChatCompletionRequest) -> list[dict[str, str]]:
    """The messages as the chat domain reads them: an assistant's calls rendered as the model
    writes them, a tool result as role "tool"."""
    messages = []
    for message in body.messages:
        item = {"role": message.role, "content": message.text()}
        if message.role == "assistant" and message.tool_calls:
            calls = [(c.function.name, c.function.arguments) for c in message.tool_calls]
            item["tool_calls"] = rlpa.render_tool_calls(calls)
        messages.append(item)
    return messages
