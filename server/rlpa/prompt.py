"""What the model is shown: the RLPA instructions, the stored profile and the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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

OPERATOR_HEADING = "Operator instructions:"
STORED_PROFILE_HEADING = "What you know about this user from earlier conversations:"

_OPERATOR_ROLES = ("system", "developer")
_HISTORY_ROLES = ("user", "assistant")


def render_profile(traits: Sequence[str]) -> str:
    return "".join(["<profile>\n", *(f"- {trait}\n" for trait in traits), "</profile>"])


def render_output(traits: Sequence[str], response: str) -> str:
    """Exactly the output an RLPA model is trained to write."""
    return f"{render_profile(traits)}\n\n<response>\n{response}\n</response>"


def build_messages(
    messages: Sequence[Mapping[str, str]], stored_profile: Sequence[str] | None
) -> list[dict[str, str]]:
    """The client's chat as the model must see it: one system message, then the history.

    The stored profile goes into the system message only before the first assistant turn; after
    that the model sees it as its own last inference, on the most recent assistant turn, which
    is how training presents it (older turns show only what the user saw).
    """
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
    system = [SYSTEM_PROMPT]
    if operator:
        system.append(OPERATOR_HEADING + "\n" + "\n\n".join(operator))
    if last_assistant is None and traits:
        system.append(STORED_PROFILE_HEADING + "\n" + render_profile(traits))
    rendered = [{"role": "system", "content": "\n\n".join(system)}]
    for index, message in enumerate(history):
        content = message["content"]
        if index == last_assistant:
            content = render_output(traits, content)
        rendered.append({"role": message["role"], "content": content})
    return rendered
