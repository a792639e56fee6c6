"""The hand-written transfer set: users that no training generator can produce.

Evaluation only. It is never trained on and never used to pick a checkpoint (README.md here);
checkpoints are chosen on the validation split of the generated users.

A fact is matched by keywords, not by wording: it counts as stored when one stored trait holds
every keyword of at least one of its groups. A keyword matches where a word starts, case
insensitive, so "peanut" matches "peanuts" and "allerg" matches "allergic", while "likes" does
not match "dislikes" (which is what lets a forbidden "likes horror" spare "dislikes horror").
A forbidden fact asserts the wrong thing, so a trait that negates it or puts it in the past
("never drinks alcohol", "no longer lives in Bristol") does not match it.

A fact is *asserted* by a trait (`KeywordFact.asserted_by`) when the trait holds a group's
keywords with the same polarity as the fact: the negation guard. Polarity is read per keyword,
in the clause it stands in (clauses end at , ; : . ! ? brackets, a spaced dash, and "and",
"but", "because", "though", "although", "whereas", "if", "when"): the negation cues (`not`,
`no`, `nothing`, `never`, `n't`, `dont`, `cannot`, `without`, `no longer`, `used to`, ...) and
words of aversion (`dislike`, `hate`, `avoid`, `afraid`, `scared`, ...) that come before the
keyword in its clause, at most NEGATION_REACH words before it, or inside it, are counted, and
an odd count makes that occurrence negative. Aversion
words count because "dislikes coriander" says what "doesn't like coriander" says; counting (not
mere presence) is what tells "is not allergic" from "is allergic". Cues after a keyword do not
count ("a flat with no garden" still has a flat). A group reads negative when one of its
content keywords occurs negative, and positive when each occurs positive somewhere (a keyword
made of cues alone, such as `not`, is not content: it is what the group says, not what it is
about); a long message that says a thing both ways ("no nuts please, my son is allergic to
nuts") reads both ways. The fact's own polarity for a group is read the same way in its
canonical wording when the wording holds the group, else in the group's keywords read as a
phrase, cues first ("not mushroom"); the trait asserts the fact when it can be read that way.
So "is not allergic to kiwi" does not assert "is allergic to kiwi", and
"likes mushrooms, not onions" does not assert "can't stand mushrooms" through its group
(`not`, `mushroom`): the "not" is in another clause. A forbidden fact matches only a trait that
asserts it, so "is not vegetarian anymore" is excused from "is vegetarian", while "likes kiwi,
not bananas" is not excused from "likes kiwi" merely for holding a "not"; and a forbidden fact
that is itself negative ("doesn't eat meat", retired once the user eats meat again) matches the
trait that still says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


U = TypeVar("U", bound=_HasId)

TRANSFER_V1 = Path(__file__).with_name("transfer_v1.jsonl")
"""Read to decide since the second SFT pass: a second dev set now (README)."""
TRANSFER_V2 = Path(__file__).with_name("transfer_v2.jsonl")
"""The held-out set: read once per shipped model, never to decide (README)."""
DEV_V1 = Path(__file__).with_name("dev_v1.jsonl")
"""Hand-written users in the same format that may be read to diagnose and to choose (README)."""
UPDATES_DEV_V1 = Path(__file__).with_name("updates_dev_v1.jsonl")
"""A dev set of hand-written users who correct, change, withdraw or withhold what they say
(`updates`): read to diagnose and to choose, never trained on (README)."""
USER = "user"
"""`about` of a fact about the user themself; anything else names a third party."""
FORBIDDEN_KINDS = ("negation", "outdated", "forgotten", "private")
"""negation: the opposite of what was said ("eats peanuts" for an allergy); outdated: true once,
no longer (the city before a move, a number the user corrected); forgotten: true, but the user
asked to forget it; private: true, but the user asked not to store it."""
UPDATE_KINDS = ("correction", "change", "forget", "dont_store")
"""correction: a value said wrong, then put right ("I said six years, it's eight"); change: true
once, no longer ("we moved to Porto"); forget: "please forget that I ..."; dont_store: "don't
remember my religion" (said before or with the fact)."""

Groups = tuple[tuple[str, ...], ...]


class TransferSetError(ValueError):
    """A malformed transfer-set line; the message names the file, the line and the field."""


def _normalised(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


@lru_cache(maxsize=4096)
def _keyword(keyword: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(_normalised(keyword)))


# Cues that a trait denies or retires what it mentions.
_NEGATED = re.compile(
    r"(?<!\w)(?:not|no|never|nor|none|nothing|neither|without|no longer|used to|formerly"
    r"|former|previously|any ?more|cannot"
    # typed without the apostrophe ("i cant eat that", "dont want randoms joining")
    r"|(?:is|are|was|were|do|does|did|ca|wo|could|would|should|have|has|had)nt)(?!\w)|n't(?!\w)"
)
# Words that turn what follows against the user, as a negation would (module docstring).
_AVERSE = re.compile(
    r"(?<!\w)(?:dislik\w*|hate[sd]?|hating|avoid\w*|detest\w*|loath\w*|afraid|scared"
    r"|terrified|refus\w*)(?!\w)"
)
NEGATION_REACH = 6
"""Words a cue may stand before a keyword and still negate it: "is not allergic to kiwi" (2),
"doesn't want to use a spray bottle" (4), but not "has no clue how to reference a video for a
first-year psych essay", where the "no" is about the clue."""
# Where a clause ends, in normalised text (no newlines left). Not "so" or "yet": "not so keen
# on horror" and "hasn't yet tried kiwi" are one clause.
_CLAUSE_END = re.compile(
    r"[,;:.!?()]|\s[-\u2013\u2014]\s"
    r"|(?<!\w)(?:and|but|because|though|although|whereas|if|when)(?!\w)"
)


def keyword_match(text: str, any_of: Groups) -> bool:
    """Whether `text` holds every keyword of at least one group (see the module docstring)."""
    normalised = _normalised(text)
    return any(all(_keyword(k).search(normalised) for k in group) for group in any_of)


def _cues(text: str) -> int:
    return len(_NEGATED.findall(text)) + len(_AVERSE.findall(text))


def _is_content(keyword: str) -> bool:
    """Whether a keyword names something beyond its cues ("no car" does, "not" does not)."""
    return bool(re.search(r"\w", _AVERSE.sub(" ", _NEGATED.sub(" ", _normalised(keyword)))))


def _polarities(normalised: str, group: tuple[str, ...]) -> tuple[bool, bool]:
    """(can be read positive, can be read negative): the readings of `group` in a normalised
    text that holds it (module docstring)."""
    clause_ends = [m.end() for m in _CLAUSE_END.finditer(normalised)]

    def negative(keyword: str, start: int) -> bool:
        clause_start = max((end for end in clause_ends if end <= start), default=0)
        before = " ".join(normalised[clause_start:start].split()[-(NEGATION_REACH + 1) :])
        return (_cues(before) + _cues(_normalised(keyword))) % 2 == 1

    readings = [
        {negative(k, m.start()) for m in _keyword(k).finditer(normalised)}
        for k in group
        if _is_content(k)
    ]
    return all(False in r for r in readings), not readings or any(True in r for r in readings)


def asserts(text: str, wording: str, any_of: Groups) -> bool:
    """Whether `text` holds a group of `any_of` with the polarity that `wording` (the fact's
    canonical wording) gives it: the negation guard of the module docstring."""
    normalised = _normalised(text)
    for group in any_of:
        if not all(_keyword(k).search(normalised) for k in group):
            continue
        if keyword_match(wording, (group,)):
            reference = _normalised(wording)
        else:  # cues first, so ("mushroom", "not") reads as "not mushroom"
            reference = _normalised(" ".join(sorted(group, key=_is_content)))
        negative = _polarities(reference, group)[1]
        if _polarities(normalised, group)[negative]:
            return True
    return False


@dataclass(frozen=True)
class KeywordFact:
    fact: str
    """A canonical wording, third person without a subject: "is allergic to kiwi"."""
    any_of: Groups

    def matches(self, trait: str) -> bool:
        return keyword_match(trait, self.any_of)

    def asserted_by(self, trait: str) -> bool:
        """`matches` with the negation guard: the trait says it, not its opposite."""
        return asserts(trait, self.fact, self.any_of)


@dataclass(frozen=True)
class GoldFact(KeywordFact):
    """True at the end of conversation 1."""

    turn: int
    """The 1-based user turn of conversation 1 where it is first said."""
    about: str = USER
    in_request: bool = False
    """Said inside a request ("as a vegan, what should I cook?") rather than as a statement."""


@dataclass(frozen=True)
class ForbiddenFact(KeywordFact):
    """Must not be stored: groups match the wrong trait ("eats peanuts"), not the right one."""

    kind: str

    def matches(self, trait: str) -> bool:
        # The guard, not any cue anywhere: "likes kiwi, not bananas" still asserts "likes kiwi".
        return self.asserted_by(trait)


@dataclass(frozen=True)
class Update:
    """A turn of conversation 1 that changes what must be stored: afterwards the profile holds
    every `new` gold fact and matches none of the `old` forbidden facts."""

    turn: int
    """The 1-based user turn of conversation 1 that says it."""
    kind: str
    old: tuple[int, ...]
    """Indices into the user's `forbidden`: what must be gone (or never stored)."""
    new: tuple[int, ...] = ()
    """Indices into the user's `gold`: the value that replaces it (none for a plain forget)."""


@dataclass(frozen=True)
class TransferUser:
    id: str
    conversations: tuple[tuple[str, ...], ...]
    """The user's messages only; the assistant's replies come from the model under test."""
    gold: tuple[GoldFact, ...]
    forbidden: tuple[ForbiddenFact, ...]
    small_talk: tuple[int, ...] = ()
    """1-based turns of conversation 1 that are small talk: no fact, no real request."""
    notes: str = ""
    updates: tuple[Update, ...] = ()


_REQUIRED: Any = object()


def _field(
    data: dict[str, Any], name: str, kind: type, where: str, default: Any = _REQUIRED
) -> Any:
    if name not in data:
        if default is _REQUIRED:
            raise TransferSetError(f"{where}: missing field {name!r}")
        return default
    value = data[name]
    # bool is an int subclass: a turn of `true` must not pass as 1
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TransferSetError(f"{where}: {name!r} must be {kind.__name__}, got {value!r}")
    return value


def _only(data: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TransferSetError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TransferSetError(f"{where}: unknown field(s) {unknown}")
    return data


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise TransferSetError(f"{where}: expected a non-empty list of strings")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise TransferSetError(f"{where}: every item must be a non-empty string")
    return tuple(value)


def _groups(value: Any, where: str) -> Groups:
    if not isinstance(value, list) or not value:
        raise TransferSetError(f"{where}: 'any_of' must be a non-empty list of keyword groups")
    return tuple(_texts(group, f"{where}.any_of[{i}]") for i, group in enumerate(value))


def _gold(data: Any, turns: int, where: str) -> GoldFact:
    data = _only(data, {"fact", "any_of", "turn", "about", "in_request"}, where)
    turn = _field(data, "turn", int, where)
    if not 1 <= turn <= turns:
        raise TransferSetError(f"{where}: turn {turn} is not a turn of conversation 1 (1..{turns})")
    return GoldFact(
        _field(data, "fact", str, where),
        _groups(data.get("any_of"), where),
        turn,
        _field(data, "about", str, where, USER),
        _field(data, "in_request", bool, where, False),
    )


def _forbidden(data: Any, where: str) -> ForbiddenFact:
    data = _only(data, {"fact", "any_of", "kind"}, where)
    kind = _field(data, "kind", str, where)
    if kind not in FORBIDDEN_KINDS:
        raise TransferSetError(f"{where}: kind must be one of {FORBIDDEN_KINDS}, got {kind!r}")
    return ForbiddenFact(_field(data, "fact", str, where), _groups(data.get("any_of"), where), kind)


def _indices(value: Any, size: int, what: str, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size for i in value
    ):
        raise TransferSetError(f"{where}: expected a list of indices into {what} (0..{size - 1})")
    return tuple(value)


def _update(data: Any, turns: int, gold: int, forbidden: int, where: str) -> Update:
    data = _only(data, {"turn", "kind", "old", "new"}, where)
    turn = _field(data, "turn", int, where)
    if not 1 <= turn <= turns:
        raise TransferSetError(f"{where}: turn {turn} is not a turn of conversation 1 (1..{turns})")
    kind = _field(data, "kind", str, where)
    if kind not in UPDATE_KINDS:
        raise TransferSetError(f"{where}: kind must be one of {UPDATE_KINDS}, got {kind!r}")
    old = _indices(_field(data, "old", list, where), forbidden, "forbidden", f"{where}.old")
    new = _indices(_field(data, "new", list, where, []), gold, "gold", f"{where}.new")
    if not old:
        raise TransferSetError(f"{where}: an update names at least one old (forbidden) fact")
    if kind in ("correction", "change") and not new:
        raise TransferSetError(f"{where}: a {kind} names the new (gold) value")
    return Update(turn, kind, old, new)


def parse_user(data: Any, where: str = "user") -> TransferUser:
    """One decoded line as a user; `where` names it in error messages."""
    allowed = {"id", "conversations", "gold", "forbidden", "small_talk", "notes", "updates"}
    data = _only(data, allowed, where)
    conversations = _field(data, "conversations", list, where)
    if len(conversations) != 2:
        raise TransferSetError(f"{where}: expected 2 conversations, got {len(conversations)}")
    convs = tuple(_texts(c, f"{where}.conversations[{i}]") for i, c in enumerate(conversations))
    turns = len(convs[0])
    small_talk = tuple(_field(data, "small_talk", list, where, []))
    if not all(isinstance(t, int) and 1 <= t <= turns for t in small_talk):
        raise TransferSetError(f"{where}: small_talk must list turns of conversation 1")
    gold = tuple(
        _gold(g, turns, f"{where}.gold[{i}]")
        for i, g in enumerate(_field(data, "gold", list, where))
    )
    forbidden = tuple(
        _forbidden(f, f"{where}.forbidden[{i}]")
        for i, f in enumerate(_field(data, "forbidden", list, where))
    )
    updates = tuple(
        _update(u, turns, len(gold), len(forbidden), f"{where}.updates[{i}]")
        for i, u in enumerate(_field(data, "updates", list, where, []))
    )
    return TransferUser(
        id=_field(data, "id", str, where),
        conversations=convs,
        gold=gold,
        forbidden=forbidden,
        small_talk=small_talk,
        notes=_field(data, "notes", str, where, ""),
        updates=updates,
    )


def read_users(
    path: str | Path, parse: Callable[[dict[str, Any], str], U], error: type[ValueError]
) -> list[U]:
    """Every line of a hand-written set parsed by `parse`, in order; a malformed line or a
    duplicate id raises `error` naming the file and the line."""
    path = Path(path)
    users: list[U] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not valid JSON ({exc.msg})") from None
            user = parse(data, where)
            if user.id in seen:
                raise error(f"{where}: duplicate id {user.id!r}")
            seen.add(user.id)
            users.append(user)
    return users


def load_transfer_set(path: str | Path = TRANSFER_V1) -> list[TransferUser]:
    """Every user in the file, in order; a malformed line raises TransferSetError."""
    return read_users(path, parse_user, TransferSetError)


__all__ = [
    "DEV_V1",
    "FORBIDDEN_KINDS",
    "TRANSFER_V1",
    "TRANSFER_V2",
    "UPDATES_DEV_V1",
    "UPDATE_KINDS",
    "USER",
    "ForbiddenFact",
    "GoldFact",
    "KeywordFact",
    "TransferSetError",
    "TransferUser",
    "Update",
    "asserts",
    "keyword_match",
    "load_transfer_set",
    "parse_user",
]
