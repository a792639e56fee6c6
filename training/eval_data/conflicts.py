"""The hand-written conflict set: a stored preference, then a request whose generic answer would
break it. It measures whether a reply *uses* the stored profile, apart from whether the model
writes one (README.md here; the runner is training/evaluate/conflicts.py).

A reply violates a preference when it holds every keyword of one `violates_any` group. A keyword
matches where a word starts, case-insensitive, as in the transfer set ("peanut" matches
"peanuts"), except where the reply says it is leaving the thing out: an occurrence is excused
when a cue stands within GUARD_REACH words before it in its clause (`no`, `not`, `n't`,
`never`, `without`, `avoid`, `skip`, `instead of`, `rather than`, `except`, `omit`,
`leave out`, `swap`, `replace`, `substitute`, `non-`), or a word naming the constraint
(`allergic`, `intolerant`, `afraid`, `scared`, `fear`, `terrified`, `hate`, `dislike`), or a
"free" made into a suffix ("dairy-free cheese", "alcohol-free wine", "free from"); and when the
keyword is itself made "-free" ("peanut-free", "gluten free"). "feel free to add peanuts" and
"free-range chicken" excuse nothing. `respects_any` groups (optional) are matched without the
guard: they show the reply took the preference into account ("allergic", "hostel").

`answers_any` groups (optional; every line of v2 has them) name what a reply that actually
answers the request would name ("curry", "noodle" for a quick Thai dinner). They are matched
without the guard too: its cues are the very words of a reply that answers around the
preference ("swap the peanuts for cashews", "gluten-free pasta"), and guarding them would count
against the replies the set is after. A reply *serves* the user when it answers (an
`answers_any` group) and respects (no `violates_any` group): a vague reply that names nothing
violates nothing, and only `served` tells it from a useful one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from training.eval_data import Groups, TransferSetError, keyword_match, read_users

CONFLICTS_DEV_V1 = Path(__file__).with_name("conflicts_dev_v1.jsonl")
"""A dev set: it may be read to diagnose and to choose (README). No `answers_any`."""
CONFLICTS_DEV_V2 = Path(__file__).with_name("conflicts_dev_v2.jsonl")
"""A dev set with `answers_any` on every line, so that `served` can be read (README)."""
GUARD_REACH = 3
"""Words a cue may stand before a keyword and still excuse it: "without any added peanuts"."""

_CUE = re.compile(
    r"(?<![\w'])(?:no|not|never|without|non|avoid\w*|skip\w*|omit\w*|except|swap\w*|replac\w*"
    r"|substitut\w*|instead of|rather than|leave out|leaving out|\w+n't|dont|doesnt|cant|wont"
    r"|allerg\w*|intoleran\w*|afraid|scared|fear\w*|terrified|hate[sd]?|dislik\w*)(?![\w'])"
)
# "free" as a suffix of the word before it (and not "feel free", "for free", "is free"), or
# "free from/of"; never "free-range".
_FREE = re.compile(
    r"(?<=\w)(?<!\bfeel)(?<!\bfor)(?<!\bis)(?<!\bare)(?<!\bbe)[- ]free(?![\w-])"
    r"|(?<![\w-])free (?:from|of)(?!\w)"
)
_FREE_AFTER = re.compile(r"\w*[- ]free(?![\w-])")
_CLAUSE_END = re.compile(r"[,;:.!?()\[\]\n]|\s[-\u2013\u2014]\s")


class ConflictSetError(TransferSetError):
    """A malformed conflict-set line; the message names the file, the line and the field."""


@dataclass(frozen=True)
class ConflictUser:
    id: str
    preference: str
    """What the user said in conversation 1 (first person); the runner stores `stored` instead."""
    stored: tuple[str, ...]
    """The profile as stored: traits, third person without a subject."""
    request: str
    """Conversation 2's first message, which does not mention the preference."""
    violates_any: Groups
    respects_any: Groups = ()
    answers_any: Groups = ()
    """What a reply that answers the request names; empty where the set does not say (v1)."""
    notes: str = ""

    def violations(self, reply: str) -> list[list[str]]:
        """The `violates_any` groups the reply holds (after the guard)."""
        return [list(group) for group in self.violates_any if holds(reply, group)]

    def acknowledged(self, reply: str) -> bool:
        return bool(self.respects_any) and keyword_match(reply, self.respects_any)

    def answers(self, reply: str) -> bool | None:
        """Whether the reply names an answer (an `answers_any` group, no guard); None for a
        user without `answers_any`."""
        return keyword_match(reply, self.answers_any) if self.answers_any else None

    def serves(self, reply: str) -> bool | None:
        """Answers and violates nothing; None for a user without `answers_any`."""
        answers = self.answers(reply)
        return None if answers is None else answers and not self.violations(reply)


def _normalised(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


@lru_cache(maxsize=4096)
def _keyword(keyword: str) -> re.Pattern[str]:
    words = _normalised(keyword).split()
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words))


def excused(text: str, start: int, end: int) -> bool:
    """Whether the keyword occurrence text[start:end] (normalised text) is said as left out."""
    clause_start = max((m.end() for m in _CLAUSE_END.finditer(text, 0, start)), default=0)
    before = text[clause_start:start].split()[-GUARD_REACH:]
    window = " ".join(before)
    if _CUE.search(window) or _FREE.search(window):
        return True
    return bool(_FREE_AFTER.match(text, end))


def occurs(text: str, keyword: str) -> bool:
    """Whether `keyword` occurs in `text` at least once where the guard does not excuse it."""
    normalised = _normalised(text)
    return any(
        not excused(normalised, m.start(), m.end()) for m in _keyword(keyword).finditer(normalised)
    )


def holds(text: str, group: tuple[str, ...]) -> bool:
    """Every keyword of the group occurs unexcused."""
    return all(occurs(text, keyword) for keyword in group)


def _groups(value: Any, where: str, required: bool) -> Groups:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise ConflictSetError(f"{where}: expected a non-empty list of keyword groups")
    groups = []
    for i, group in enumerate(value):
        if not isinstance(group, list) or not group:
            raise ConflictSetError(f"{where}[{i}]: a group is a non-empty list of keywords")
        if not all(isinstance(k, str) and k.strip() for k in group):
            raise ConflictSetError(f"{where}[{i}]: every keyword must be a non-empty string")
        groups.append(tuple(group))
    return tuple(groups)


def _text(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConflictSetError(f"{where}: {name!r} must be a non-empty string")
    return value


FIELDS = {
    "id",
    "preference",
    "stored",
    "request",
    "violates_any",
    "respects_any",
    "answers_any",
    "notes",
}


def parse_conflict(data: Any, where: str = "user") -> ConflictUser:
    if not isinstance(data, dict):
        raise ConflictSetError(f"{where}: expected a JSON object")
    if unknown := sorted(set(data) - FIELDS):
        raise ConflictSetError(f"{where}: unknown field(s) {unknown}")
    stored = data.get("stored")
    if not isinstance(stored, list) or not stored:
        raise ConflictSetError(f"{where}: 'stored' must be a non-empty list of traits")
    if not all(isinstance(t, str) and t.strip() for t in stored):
        raise ConflictSetError(f"{where}: every stored trait must be a non-empty string")
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise ConflictSetError(f"{where}: 'notes' must be a string")
    return ConflictUser(
        id=_text(data, "id", where),
        preference=_text(data, "preference", where),
        stored=tuple(stored),
        request=_text(data, "request", where),
        violates_any=_groups(data.get("violates_any"), f"{where}.violates_any", True),
        respects_any=_groups(data.get("respects_any"), f"{where}.respects_any", False),
        answers_any=_groups(data.get("answers_any"), f"{where}.answers_any", False),
        notes=notes,
    )


def load_conflict_set(path: str | Path = CONFLICTS_DEV_V1) -> list[ConflictUser]:
    """Every user in the file, in order; a malformed line raises ConflictSetError."""
    return read_users(path, parse_conflict, ConflictSetError)
