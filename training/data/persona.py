"""Split a third-person persona paragraph into atomic traits, one fact each.

Heuristic, tuned on paragraphs shaped like "He is a 33-year-old mechanical engineer who enjoys
running and brewing beer. He is married and has a young daughter." A fact the rules cannot take
apart stays whole: a trait holding two facts costs recall later, while a wrongly cut one would
invent a fact the user never had.
"""

from __future__ import annotations

import re

from server.rlpa import normalize_traits
from training.text import sentences

# Only listed words start a new clause. An unknown word could as well be a plural noun ("makes
# scarves and hats for friends"), and gluing a clause back loses less than cutting one wrongly.
_VERBS = frozenset(
    """is was has had does did can could would will should may might must got loves likes enjoys
    works lives plays knits reads writes cooks bakes paints runs swims hikes travels volunteers
    spends prefers values cares hates dislikes owns drives rides collects teaches studies grows
    brings tends tries wants hopes dreams believes speaks listens watches follows practices
    practises attends goes visits uses makes takes keeps finds gets feels seems struggles adores
    avoids suffers manages dances sings fishes needs wears shares supports admires appreciates
    describes considers identifies gives helps participates specializes specialises holds leads
    coaches streams performs maintains builds organizes organises plans experiments designs
    trains hosts brews tours competes flies customizes oversees documents surfs creates roasts
    restores mentors fosters serves sells raises studied attended completed opened published
    moved started founded worked lived grew won retired dropped went became""".split()
)
_ADVERBS = frozenset(
    """also always often usually especially really still never sometimes currently recently
    rarely frequently truly deeply particularly mostly generally regularly actively now just
    once""".split()
)
_DROPPED_ADVERBS = ("also", "especially")
_SUBJECT = re.compile(r"^(?:he|she|they)(?P<is>['\u2019]s)?\s+", re.I)
# "In her free time, she paints": the lead-in says little, and it hides the subject.
_LEAD_IN = re.compile(r"^[^,]{1,40},\s*(?=(?:he|she|they)\b)", re.I)
_POSSESSIVE = re.compile(r"^(?:his|her)\b", re.I)
_AGE = re.compile(r"\b(?:a|an)\s+(\d{1,3})[- ]years?[- ]old\b\s*(?=(\w?))", re.I)
# Only "is a <noun> who ..." describes the subject; "has a sister who is married" does not.
_WHO = re.compile(r"^(is an? [^,]*?),?\s+who\s+(.*)$", re.I)
_SEPARATOR = re.compile(r"(\s*,\s*(?:(?:and|or)\b)?\s*|\s+and\s+|\s*;\s*)", re.I)
_NAMES_AND = re.compile(r"\b([A-Z][\w-]*) and (?=[A-Z])")
_LIVES_WITH = re.compile(
    r"^(lives\b.*?)\s+with\s+((?:a|an|one|two|three|four|five|\d+)\s.*)$", re.I
)
_SHORT = 3
"""A clause with at most this many words after its verb is the head of a list."""


def _words(text: str) -> list[str]:
    return text.split()


def _verb(text: str) -> str | None:
    """The clause's leading verb (after adverbs), or None when it does not start with one."""
    words = [w.lower() for w in _words(text)]
    index = 0
    while index < len(words) and words[index] in _ADVERBS:
        index += 1
    if index == len(words):
        return None
    # After an adverb ("and often conducts workshops") only a verb can follow.
    return words[index] if words[index] in _VERBS or index > 0 else None


def _continue(previous: str, part: str, head: str | None) -> str | None:
    """A verbless piece after a separator as a trait of its own, or None to glue it back."""
    words = _words(part)
    if head and len(_words(previous)) - 1 <= _SHORT and len(words) <= _SHORT:
        return f"{head} {part}"  # "enjoys running and brewing beer"
    if words[0].lower().endswith("ing"):
        return f"is {part}"  # "..., working as a librarian"
    return None  # "grows vegetables and herbs" stays whole


def _split_coordination(clause: str) -> list[str]:
    protected = _NAMES_AND.sub(lambda m: m.group(1) + "\x00", clause)
    pieces = _SEPARATOR.split(protected)
    traits: list[str] = []
    head: str | None = None
    for index in range(0, len(pieces), 2):
        part = _subjectless(pieces[index].replace("\x00", " and "))
        if not part:
            continue
        verb = _verb(part)
        if not traits or verb or _POSSESSIVE.match(part):
            traits.append(part)
            head = verb
        elif (split := _continue(traits[-1], part, head)) is not None:
            traits.append(split)
        else:
            traits[-1] += pieces[index - 1] + part
    return traits


def _subjectless(text: str) -> str:
    """Drop the subject: "She's a nurse" -> "is a nurse", "they have a son" -> "has a son"."""
    text = _LEAD_IN.sub("", text.strip().rstrip(".!?").strip())
    match = _SUBJECT.match(text)
    if match:
        text = ("is " if match.group("is") else "") + text[match.end() :]
        # "She and her husband dance" -> "dance with their husband"
        text = re.sub(r"^and (?:his|her|their) (\w+) (.*)$", r"\2 with their \1", text)
        text = re.sub(r"^(?:are|am)\b", "is", re.sub(r"^have\b", "has", text))
    return " ".join(w for w in _words(text) if w.lower() not in _DROPPED_ADVERBS)


def _finish(trait: str) -> list[str]:
    trait = trait.strip(" ,;:")
    trait = _POSSESSIVE.sub("their", trait)
    if trait[1:2].islower() or len(trait) == 1:
        trait = trait[:1].lower() + trait[1:]
    lives = _LIVES_WITH.match(trait)
    if lives:
        return [lives.group(1), "has " + lives.group(2)]
    return [trait] if trait else []


def split_persona(paragraph: str) -> list[str]:
    """Atomic third-person traits ("is 33 years old", "enjoys running") from a persona text."""
    traits: list[str] = []
    for sentence in sentences(paragraph):
        text = _subjectless(sentence)
        text = _POSSESSIVE.sub("their", text)
        for age in _AGE.finditer(text):
            traits.append(f"is {age.group(1)} years old")
        # "a 45-year-old single mother" keeps its noun phrase with the article it now needs
        text = _AGE.sub(
            lambda m: "an " if m.group(2) and m.group(2).lower() in "aeiou" else "a ", text
        )
        text = re.sub(r"^is an?\s*$", "", text.strip())  # "He is a 33-year-old." said only the age
        who = _WHO.match(text)
        for clause in who.groups() if who else (text,):
            for part in _split_coordination(clause):
                traits.extend(_finish(part))
    return normalize_traits(traits)
