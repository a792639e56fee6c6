"""Small text heuristics shared by the simulators and the offline rewards.

Plain Python on purpose: these run inside reward functions for every sampled completion, so they
must be cheap and must not pull a model in.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

_CURLY = "\u2019"  # the typographic apostrophe models and phones write
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019-][A-Za-z0-9]+)*")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i i'm i've if in into is it
    its itself just let's me more most my myself no nor not now of off on once only or other our
    ours out over own same she should so some such than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves also really quite
    much many lot lots get got go going like one thing things bit any anything something yeah
    well maybe sure okay ok oh hm hmm hey hi hello thanks thank please tell know think want
    sound sounds""".split()
)

NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}  # fmt: skip


def words(text: str) -> list[str]:
    return [w.replace(_CURLY, "'") for w in _WORD.findall(text)]


def stem(word: str) -> str:
    """A crude suffix stripper: enough for "cooking"/"cooks"/"cook" to meet, nothing more."""
    w = word.lower().replace(_CURLY, "'")
    if w.endswith("'s"):
        w = w[:-2]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
        # running -> runn -> run
        return w[:-1] if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "ls" else w
    if (w.endswith("es") and len(w) > 4 and w[-3] in "sxz") or w.endswith(("ches", "shes")):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss") and len(w) > 3:
        return w[:-1]
    if w.endswith("ed") and len(w) > 5:
        return w[:-2]
    return w


def content_words(text: str) -> set[str]:
    """Stemmed words that carry meaning: stopwords dropped, numbers kept."""
    return {
        stem(w) for w in words(text) if (w.lower() not in STOPWORDS and len(w) > 1) or w.isdigit()
    }


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def _normalised(text: str) -> str:
    return " ".join(w.lower() for w in words(text))


def similarity(a: str, b: str) -> float:
    """0..1 surface similarity; near-identical replies score above ~0.85."""
    left, right = _normalised(a), _normalised(b)
    if not left or not right:
        return 0.0
    return SequenceMatcher(None, left, right, autojunk=False).ratio()


def entities(text: str) -> set[str]:
    """Names and numbers in a trait: capitalised words after the first word, and numerals.

    The first word is skipped because traits are often written sentence-case ("Lives in Oslo"):
    only a later capital says "this is a name".
    """
    found: set[str] = set()
    for index, word in enumerate(words(text)):
        lower = word.lower()
        if word.isdigit():
            found.add(word)
        elif lower in NUMBER_WORDS:
            found.add(NUMBER_WORDS[lower])
        elif index > 0 and word[0].isupper() and lower not in {"i", "i'm", "i've", "i'd"}:
            found.add(lower)
    return found


def names_conflict(a: str, b: str) -> bool:
    """Both traits name something (a place, a person, a number) and share none of it:
    "lives in Seattle" vs "lives in Portland" are about the same topic but disagree."""
    left, right = entities(a), entities(b)
    return bool(left) and bool(right) and not (left & right)


def sentences(text: str) -> list[str]:
    """Split on sentence punctuation followed by whitespace; keeps the punctuation."""
    parts = re.split(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])", text.strip())
    return [p.strip() for p in parts if p.strip()]


FLATTERY = (
    "great question", "good question", "excellent question", "fantastic question",
    "what a question", "amazing", "you're so smart", "you are so smart", "so clever",
    "brilliant", "what a wonderful", "what a great", "impressive", "so insightful",
    "you're absolutely right", "you are absolutely right", "genius", "you're awesome",
    "i love that you", "love that question", "you have great taste", "you're clearly",
)  # fmt: skip


def is_flattering(text: str) -> bool:
    lowered = " ".join(text.lower().replace(_CURLY, "'").split())
    return any(phrase in lowered for phrase in FLATTERY)
