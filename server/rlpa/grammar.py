"""The output format as a GBNF grammar, for backends that can constrain decoding (llama.cpp).

A small model that was never trained on the contract drifts out of it (stray tags, no profile
block); constraining decoding makes every turn parseable. The bounds mirror the trait limits the
parser enforces anyway, kept lower so that the profile block leaves room for the reply.

A trait line is one statement about the user. Left free, a small model runs a trait on into the
reply it is about to write ("works nights, so they get a good rest. What's your home like?"), and
that text would be stored as memory. So a trait holds no "?", "!" or ";", and a full stop inside
it must not start a new sentence: it is followed by a letter or digit ("3.5", "a.m.") or by a
space and a lower-case word or digit ("approx. 5"); it may end the line. The cost: a capitalised
word after an abbreviation ("St. Louis") cannot follow its full stop, so the model writes
"St Louis" or ends the trait there.

The reply is any text that does not hold `</response>` (in any case, as the parser reads it):
`<` is free, so a reply can hold HTML, `Vec<u8>` or `a < b`. Its first character is not blank
(the parser strips it anyway) nor "-" (a trait line run on past the block). `rN` is the rest of
the reply once its last N characters are the start of `</response>`; from each, a character that
does not continue the tag falls back to r0, or to r1 if it is a new "<".
"""

from __future__ import annotations

from server.rlpa.json_grammar import JSON_RULES, literal, schema_rules
from server.rlpa.tools import MAX_TOOL_CALLS, JsonReply, ToolUse

FORMAT_GBNF = r"""
root    ::= "<profile>\n" trait{0,12} "</profile>\n\n<response>\n" reply "\n</response>"
trait   ::= "- " [^\n<?!;.-] tchar{1,120} "."? "\n"
tchar   ::= [^\n<?!;.] | "." [^\n<?!;. ] | ". " [a-z0-9]
reply   ::= [^<\n\t -] r0 | "<" r1
r0      ::= ( [^<] r0 | "<" r1 )?
r1      ::= ( "/" r2 | "<" r1 | [^/<] r0 )?
r2      ::= ( [rR] r3 | "<" r1 | [^rR<] r0 )?
r3      ::= ( [eE] r4 | "<" r1 | [^eE<] r0 )?
r4      ::= ( [sS] r5 | "<" r1 | [^sS<] r0 )?
r5      ::= ( [pP] r6 | "<" r1 | [^pP<] r0 )?
r6      ::= ( [oO] r7 | "<" r1 | [^oO<] r0 )?
r7      ::= ( [nN] r8 | "<" r1 | [^nN<] r0 )?
r8      ::= ( [sS] r9 | "<" r1 | [^sS<] r0 )?
r9      ::= ( [eE] r10 | "<" r1 | [^eE<] r0 )?
r10     ::= ( "<" r1 | [^><] r0 )?
"""


def output_grammar(
    *, tools: ToolUse | None = None, reply: JsonReply | None = None, learn: bool = True
) -> str:
    """The grammar of one turn's output: FORMAT_GBNF for a plain turn. With `tools`, the block
    is followed by the reply or by tool calls (only by calls when a call is required); with
    `reply`, the reply is JSON; without `learn`, the block is empty (server/rlpa/tools.py)."""
    if tools is None and reply is None and learn:
        return FORMAT_GBNF
    rules = [line for line in FORMAT_GBNF.strip().splitlines() if not line.startswith("root ")]
    rules += JSON_RULES.strip().splitlines()
    block = r'"<profile>\n" trait{0,12} "</profile>"' if learn else r'"<profile>\n</profile>"'
    answers = []
    if tools is None or not tools.required:
        if reply is None:
            answers.append(r'"<response>\n" reply "\n</response>"')
        else:
            rules += schema_rules(reply.schema or {"type": "object"}, "reply-json")
            answers.append(r'"<response>\n" reply-json "\n</response>"')
    if tools is not None:
        calls = []
        for index, tool in enumerate(tools.callable):
            rules += schema_rules({"type": "object", **tool.parameters}, f"args-{index}")
            calls.append(rf'{literal(tool.name)} ", \"arguments\": " args-{index}')
        rules.append(
            r'call ::= "<tool_call>\n{\"name\": " ( ' + " | ".join(calls) + r' ) "}\n</tool_call>"'
        )
        more = rf'( "\n" call ){{0,{MAX_TOOL_CALLS - 1}}}' if tools.parallel else ""
        answers.append(f"call {more}".strip())
    root = f"root ::= {block} " + r'"\n\n" ( ' + " | ".join(answers) + " )"
    return "\n".join([root, *rules]) + "\n"
