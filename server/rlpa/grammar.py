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

import json
from collections.abc import Sequence

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


# Words a trait may use besides the user's own: the function words and the verbs a profile is
# written with ("is", "has", "their", "lives", "likes"...), so "I'm a nurse in Seattle" can be
# stored as "is a nurse in Seattle" and "my sister is vegan" as "their sister is vegan".
COMMON_WORDS = tuple(
    """
    a about after all also an and any are as at be been before both but by called can can't
    cannot currently did does doesn't don't each every for from had has have his her in into is
    isn't it its just less like likes lives living loves enjoys hates dislikes prefers avoids
    wants needs uses used plays eats drinks owns works working studies speaks keeps goes more most
    much named never no not now of off often old on one only or other own partner since so some
    sometimes than that the their them then they they're this those three to two under up usually
    very was were who whose with year years aged forget remember
    """.split()
)
_COMMON = frozenset(COMMON_WORDS)
# Words a trait does not end on: "is a paramedic out of Dundee and" is cut short.
_CONNECTORS = frozenset(
    "a an the and or but with of to in on at for from by as their my our his her its is are was "
    "were has have had who whose which that so than into about very".split()
)
# Said words that cannot carry a trait on their own: a trait needs one said word outside these
# and COMMON_WORDS, so "hey" or "thanks" alone stores nothing.
_NOT_FACTS = frozenset(
    """
    i i'm i've i'd i'll me my mine myself we we're we've us our you you're your yours he she him
    hey hi hello hiya yo morning evening thanks thank cheers please ok okay cool great nice sure
    yes yeah yep no nope lol haha hmm um well oh ah so just really actually maybe what what's how
    why when where which who can could would should will shall do does did is are am was be any
    some anything something there here it's that's this these those get got make made want need
    know think tell give help let go going quick one idea ideas good
    """.split()
)
# Words that start the request, not a fact: a trait cannot run on into "what could I cook".
_ASKING = frozenset("what what's how why could would should recommend suggest".split())
# A trait is short: a few words before the first said word that carries a fact, a few after,
# so "I'm a paramedic on night shifts out of Dundee and my eating has gone to pot" is written
# as several traits rather than one line that runs on to the request.
_LEAD_WORDS = 3
_TAIL_WORDS = 7
# Punctuation cut from the ends of a said word: ASCII, curly quotes, guillemets and the ellipsis.
_EDGE = "\"'`()[]{}.,;:!?*_~\u201c\u201d\u2018\u2019\u00ab\u00bb\u2026"
_MAX_WORD = 40
_MAX_SAID = 400
"""The most distinct words taken from the conversation (the latest messages first)."""
_MAX_STORED = 64


def said_words(messages: Sequence[str]) -> list[str]:
    """The words a trait may take from the user's `messages` (latest first): each word with
    the punctuation around it stripped, as written, in lower case, and with a third-person "s"
    ("love" -> "loves", "study" -> "studies"), so "I love hiking" may be stored as "loves
    hiking". Words holding "<", a backslash or a control character are left out."""
    found: dict[str, None] = {}
    for message in reversed(messages):
        for raw in message.split():
            word = raw.strip(_EDGE)
            if not word or len(word) > _MAX_WORD or "<" in word or "\\" in word:
                continue
            if any(ord(c) < 32 for c in word):
                continue
            lower = word.lower()
            plain = lower in _NOT_FACTS or lower in _COMMON
            for form in (word, lower, *(() if plain else _third_person(lower))):
                found.setdefault(form, None)
            if len(found) >= _MAX_SAID:
                return list(found)
    return list(found)


def _third_person(word: str) -> tuple[str, ...]:
    if not word.isalpha() or len(word) < 3:
        return ()
    if word.endswith("y") and word[-2] not in "aeiou":
        return (word[:-1] + "ies",)
    if word.endswith(("s", "sh", "ch", "x", "z", "o")):
        return (word + "es",)
    return (word + "s",)


def _trait_rules(said: Sequence[str], stored: Sequence[str]) -> list[str]:
    """The `trait` rule for a line made of words the user said and COMMON_WORDS, holding at
    least one said word that can carry a fact, or of `forget: ` and a stored trait as it is
    stored; none if neither can be written."""
    facts = [w for w in said if w.lower() not in _NOT_FACTS and w.lower() not in _COMMON]
    lines = []
    if facts:
        lines.append(
            f"tsaid ::= ( tword tsep ){{0,{_LEAD_WORDS}}} tfact "
            f"( ( tsep tword ){{0,{_TAIL_WORDS - 1}}} tsep tlast )?"
        )
        lines.append('tsep ::= " " | ", "')
        lines.append("tword ::= tfact | tother")
        lines.append("tfact ::= " + " | ".join(_gbnf_literal(w) for w in facts))
        chosen = set(facts)
        other = [
            w
            for w in dict.fromkeys([*said, *COMMON_WORDS])
            if w not in chosen and w.lower() not in _ASKING
        ]
        lines.append("tother ::= " + " | ".join(_gbnf_literal(w) for w in other))
        last = [w for w in other if w.lower() not in _CONNECTORS]
        lines.append("tlast ::= tfact" + "".join(" | " + _gbnf_literal(w) for w in last))
    kept = [t for t in dict.fromkeys(stored) if t and "\n" not in t and "<" not in t]
    if kept:
        lines.append("tstored ::= " + " | ".join(_gbnf_literal(t) for t in kept[:_MAX_STORED]))
    choices = (["tsaid"] if facts else []) + (['"forget: " tstored'] if kept else [])
    if not choices:
        return []
    return ['trait ::= "- " ( ' + " | ".join(choices) + ' ) "\\n"', *lines]


def _gbnf_literal(text: str) -> str:
    return '"' + json.dumps(text, ensure_ascii=False)[1:-1] + '"'


def output_grammar(
    *,
    tools: ToolUse | None = None,
    reply: JsonReply | None = None,
    learn: bool = True,
    said: Sequence[str] | None = None,
    stored: Sequence[str] = (),
) -> str:
    """The grammar of one turn's output: FORMAT_GBNF for a plain turn. With `tools`, the block
    is followed by the reply or by tool calls (only by calls when a call is required); with
    `reply`, the reply is JSON; without `learn`, the block is empty (server/rlpa/tools.py).

    With `said` (the user's messages of this conversation), a trait holds only words the user
    said and COMMON_WORDS, at least one of the user's, so the block cannot store what nobody
    said ("hey" -> "is in Denver"); a forget line names a `stored` trait exactly."""
    if tools is None and reply is None and learn and said is None:
        return FORMAT_GBNF
    rules = [line for line in FORMAT_GBNF.strip().splitlines() if not line.startswith("root ")]
    if learn and said is not None:
        rules = [line for line in rules if not line.startswith(("trait ", "tchar "))]
        traits = _trait_rules(said_words(said), stored)
        rules += traits
        learn = bool(traits)
    block = r'"<profile>\n" trait{0,12} "</profile>"' if learn else r'"<profile>\n</profile>"'
    if tools is None and reply is None:
        root = f"root ::= {block} " + r'"\n\n<response>\n" reply "\n</response>"'
        return "\n".join([root, *rules]) + "\n"
    rules += JSON_RULES.strip().splitlines()
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
