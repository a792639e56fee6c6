"""What the model is shown: the RLPA instructions, the stored profile and the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from server.rlpa.tools import JsonReply, ToolUse, instructions, render_tool_results

# Small (135M) models read this every turn, so it stays short and ends with the exact format.
SYSTEM_PROMPT = """\
You are a helpful assistant who learns about the user while you chat.
Every turn, first write what the conversation shows about the user in a <profile> block: one \
short trait per line, each starting with "- ". Keep what is still true and drop anything the user \
has contradicted. If you know nothing yet, leave the block empty.
Then write your reply in a <response> block: natural, concise and suited to this user. Never \
mention the profile in your reply.

Example:
<profile>
- enjoys hiking
- lives in Oslo
</profile>

<response>
Autumn is lovely for the trails around Oslo. Do you have a favourite one?
</response>"""

# Contract v2: the block carries only what this turn changes; the stored profile is shown in
# full in the system message every turn (as a plain list, not a block to copy).
SYSTEM_PROMPT_V2 = """\
You are a helpful assistant who remembers what the user tells you about themselves.
Every turn, first write a <profile> block with only what the user's latest message newly shows \
about them: one short trait per line, each starting with "- ". Write facts about other people as \
theirs ("has a daughter who loves dinosaurs"). If a known trait is no longer true, write \
"- forget: " and that trait. Leave the block empty when nothing new was said: what you already \
know is kept.
Then write your reply in a <response> block: natural, concise, answering what the user asked and \
using what you know. Never mention the profile in your reply.

Example:
<profile>
- forget: lives in Seattle
- lives in Denver
</profile>

<response>
Welcome to Denver! Red Rocks is a great first outing.
</response>"""

OPERATOR_HEADING = "Operator instructions:"
STORED_PROFILE_HEADING = "What you know about this user from earlier conversations:"
KNOWN_PROFILE_HEADING = "What you know about this user:"

_OPERATOR_ROLES = ("system", "developer")
_HISTORY_ROLES = ("user", "assistant", "tool")


def render_profile(traits: Sequence[str]) -> str:
    return "".join(["<profile>\n", *(f"- {trait}\n" for trait in traits), "</profile>"])


def render_output(lines: Sequence[str], response: str) -> str:
    """Exactly the output an RLPA model is trained to write: the block's lines (v1: the whole
    profile; v2: the change, see `render_change`), then the reply."""
    return f"{render_profile(lines)}\n\n<response>\n{response}\n</response>"


def build_messages(
    messages: Sequence[Mapping[str, str]],
    stored_profile: Sequence[str] | None,
    version: int = 1,
    *,
    tools: ToolUse | None = None,
    reply: JsonReply | None = None,
) -> list[dict[str, str]]:
    """The client's chat as the model must see it: one system message, then the history.

    v1: the stored profile goes into the system message only before the first assistant turn;
    after that the model sees it as its own last inference, on the most recent assistant turn,
    which is how training presents it (older turns show only what the user saw).
    v2: the stored profile is in the system message every turn, and every assistant turn shows
    only what the user saw: the model writes what changes, never a copy.

    Tools (server/rlpa/tools.py): `tools` and a JSON `reply` are described in the system
    message; an assistant message may carry `tool_calls` (its calls as render_tool_calls writes
    them), and `tool` messages (results) are shown as one user turn per run of them.
    """
    if version not in (1, 2):
        raise ValueError(f"unknown contract version {version}")
    for message in messages:
        if message["role"] not in _OPERATOR_ROLES + _HISTORY_ROLES:
            raise ValueError(f"unsupported message role {message['role']!r}")
    traits = list(stored_profile or [])
    operator = [
        m["content"].strip()
        for m in messages
        if m["role"] in _OPERATOR_ROLES and m["content"].strip()
    ]
    history = [m for m in messages if m["role"] in _HISTORY_ROLES]
    last_assistant = max(
        (i for i, m in enumerate(history) if m["role"] == "assistant"), default=None
    )
    system = [SYSTEM_PROMPT if version == 1 else SYSTEM_PROMPT_V2]
    if operator:
        system.append(OPERATOR_HEADING + "\n" + "\n\n".join(operator))
    if tools is not None or reply is not None:
        system.append(instructions(tools, reply))
    if version == 2 and traits:
        system.append(KNOWN_PROFILE_HEADING + "\n" + "".join(f"- {t}\n" for t in traits).rstrip())
    elif last_assistant is None and traits:
        system.append(STORED_PROFILE_HEADING + "\n" + render_profile(traits))
    rendered = [{"role": "system", "content": "\n\n".join(system)}]
    results: list[str] = []
    for index, message in enumerate(history):
        if message["role"] == "tool":
            results.append(message["content"])
            continue
        if results:
            rendered.append({"role": "user", "content": render_tool_results(results)})
            results = []
        content, calls = message["content"], message.get("tool_calls", "")
        if version == 1 and index == last_assistant:
            content = render_output(traits, content)
            if calls:  # the model wrote its block and then the calls, without a reply
                content = render_profile(traits) + "\n\n" + calls
        elif calls:
            content = f"{content}\n\n{calls}" if content.strip() else calls
        rendered.append({"role": message["role"], "content": content})
    if results:
        rendered.append({"role": "user", "content": render_tool_results(results)})
    return rendered
