"""How a simulated user says its traits, which topics make a trait relevant, and how a
preference changes. Shared by the scripted and the LLM-backed users."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from training.data.catalogue import KINDS, conflicts, key, lookup
from training.data.profiles import Profile, Trait
from training.text import content_words, stem

# Verbs that say nothing about the topic: "enjoys" must not make a hobby relevant to every
# sentence with "enjoy" in it.
_GENERIC = frozenset(
    stem(w)
    for w in """is was has have had does enjoys enjoy loves love likes like prefers prefer wants
    want works work lives live big lot every day good""".split()
)
_IRREGULAR = {"is": "I'm", "has": "I have", "does": "I do", "goes": "I go"} | {
    modal: f"I {modal}" for modal in "was had did would will can could".split()
}
_ADVERBS = frozenset(
    "always often usually really still never sometimes rarely mostly only also just mainly hardly "
    "barely".split()
)
_POSSESSIVES = re.compile(r"\b(?:his|her|their)\b", re.I)
_REFLEXIVES = re.compile(r"\b(?:himself|herself|themselves|themself)\b", re.I)
_TASTES = ("diet", "cuisine", "drink", "hobbies", "sport", "music", "reading", "travel", "screen")
"""Kinds a user plausibly changes their mind about mid-conversation."""


def _base_form(verb: str) -> str:
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zes")):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") and not verb.endswith("ss") else verb


def first_person(text: str) -> str:
    """A third-person trait as something the user would say: "enjoys running" -> "I enjoy
    running."; used for traits the catalogue has no first-person sentences for."""
    words = _REFLEXIVES.sub("myself", _POSSESSIVES.sub("my", text.strip().rstrip("."))).split()
    if not words:
        return ""
    lead = []
    while len(words) > 1 and words[0].lower() in _ADVERBS:
        lead.append(words.pop(0))
    verb, rest = words[0].lower(), words[1:]
    if words[0].lower() == "my":
        sentence = " ".join(["My", *words[1:]])
    elif verb in _IRREGULAR:
        subject, *tail = _IRREGULAR[verb].split()
        sentence = " ".join([subject, *lead, *tail, *rest])
    elif verb.endswith("s") and not verb.endswith("ss"):
        sentence = " ".join(["I", *lead, _base_form(verb), *rest])
    else:
        phrase = " ".join([*lead, *words])
        sentence = "Me? " + phrase[:1].upper() + phrase[1:]
    return sentence + "."


_SUBJECT = {
    "i'm": "is", "i am": "is", "i've got": "has", "i have got": "has", "i've": "has",
    "i have": "has", "i was": "was", "i'd": "would", "i would": "would", "i'll": "will",
    "i can't": "can't", "i cannot": "can't", "i can": "can", "i don't": "doesn't",
    "i do not": "doesn't", "i do": "does", "i didn't": "didn't", "i did": "did", "i go": "goes",
    "i am not": "is not", "i'm not": "is not", "i haven't": "hasn't", "i wasn't": "wasn't",
    "i won't": "won't", "i couldn't": "couldn't", "i could": "could", "i will": "will",
}  # fmt: skip
_OBJECTS = [(r"\bmy\b", "their"), (r"\bmyself\b", "themselves"), (r"\bmine\b", "theirs"),
            (r"\bme\b", "them"), (r"\bi'm\b", "they're"), (r"\bi\b", "they")]  # fmt: skip
_FIRST_PERSON_LEFT = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|we|we're|our|us)\b", re.I)


_PAST = frozenset(
    """got went had did made took left came began became bought found grew lost met ran saw sold
    spent won wrote fell gave kept knew quit split moved used""".split()
)


def _third_person_verb(verb: str) -> str:
    if verb in _PAST or verb.endswith("ed"):  # "I just got engaged" -> "just got engaged"
        return verb
    if verb.endswith("y") and len(verb) > 2 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    if verb.endswith(("ch", "sh", "ss", "x", "z", "o")):
        return verb + "es"
    return verb + "s"


def third_person(sentence: str) -> str | None:
    """What a user said about themselves, as a profile trait in their own words: "I'm a nurse in
    Seattle." -> "is a nurse in Seattle", "I love hiking." -> "loves hiking", "My daughter is
    six." -> "their daughter is six". None when the sentence is not a plain first-person
    statement (the caller then uses the catalogue's wording)."""
    text = " ".join(sentence.strip().rstrip(".!").split())
    lowered = text.lower()
    if not text or "?" in text:
        return None
    trait: str | None = None
    for subject in sorted(_SUBJECT, key=len, reverse=True):
        if lowered.startswith(subject + " "):
            trait = _SUBJECT[subject] + text[len(subject) :]
            break
    else:
        words = text.split()
        if lowered.startswith("my "):
            trait = "their " + text[3:]
        elif words[0] == "I" and len(words) > 1:
            lead = []
            rest = words[1:]
            while len(rest) > 1 and rest[0].lower() in _ADVERBS:
                lead.append(rest.pop(0))
            if not rest[0].isalpha() or not rest[0].islower():
                return None
            trait = " ".join([*lead, _third_person_verb(rest[0]), *rest[1:]])
    if trait is None:
        return None
    for pattern, replacement in _OBJECTS:
        trait = re.sub(pattern, replacement, trait, flags=re.I)
    if _FIRST_PERSON_LEFT.search(trait):
        return None
    return trait


def reveal_options(trait: Trait, split: str | None = None) -> list[str]:
    """Every sentence the user may use to reveal this trait; with `split`, only that split's
    share of them ("train": every other phrasing from the first, "test": the rest), so that
    held-out users reveal their traits in words training never used. A value with one
    phrasing keeps it in both."""
    entry = lookup(trait.kind, trait.value)
    options = list(entry.first) if entry else [first_person(trait.text)]
    if split is None or len(options) < 2:
        return options
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return options[0::2] if split == "train" else options[1::2]


def value_words(trait: Trait) -> set[str]:
    """Words that name the trait's value itself ("nurse", "seattle"): evidence it was said."""
    entry = lookup(trait.kind, trait.value)
    phrasings = [trait.text, *(entry.third if entry else ())]
    words: set[str] = set()
    for phrasing in phrasings:
        words |= content_words(phrasing)
    return (words | content_words(trait.value)) - _GENERIC


def topic_words(trait: Trait) -> set[str]:
    """Words that make the trait relevant: its value's words plus its kind's topic words."""
    kind = KINDS.get(trait.kind)
    topics = {stem(word) for word in kind.keywords} if kind else set()
    return value_words(trait) | topics


def swap(trait: Trait, profile: Profile, rng: random.Random) -> Trait | None:
    """The same kind with another value the rest of the profile allows, or None."""
    kind = KINDS.get(trait.kind)
    if kind is None:
        return None
    held = {key(t.kind, t.value) for t in profile.traits if t != trait}
    options = [
        value
        for value in kind.values
        if value.name != trait.value
        and not conflicts(key(kind.name, value.name), held)
        and key(kind.name, value.name) not in held
    ]
    if not options:
        return None
    value = rng.choice(options)
    return Trait(kind.name, value.name, rng.choice(value.third))


def choose_change(
    profile: Profile, revealed: Sequence[Trait], rng: random.Random
) -> tuple[Trait, Trait] | None:
    """Which trait changes and into what: a revealed taste first, then any revealed trait, then
    any trait at all (announcing the change reveals it)."""
    revealed_set = set(revealed)
    pools = [
        [t for t in profile.traits if t in revealed_set and t.kind in _TASTES],
        [t for t in profile.traits if t in revealed_set],
        list(profile.traits),
    ]
    for pool in pools:
        for old in rng.sample(pool, len(pool)):
            new = swap(old, profile, rng)
            if new is not None:
                return old, new
    return None


def replace_trait(profile: Profile, old: Trait, new: Trait) -> Profile:
    return Profile(profile.id, [new if t == old else t for t in profile.traits])
