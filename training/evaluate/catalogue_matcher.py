"""A phrasing-independent matcher for simulated users drawn from the catalogue, for evaluation.

A catalogue trait has one meaning (its kind and value) and two or three phrasings; scoring an
inferred trait against the one phrasing a profile happened to draw caps lexical F1 well below 1
for a perfect model. Here a gold trait matches an inferred trait that is close to ANY phrasing of
its value (or names the value itself). It is an evaluation tool: training's rewards do not use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from training.rewards.profile import greedy_pairs
from training.text import content_words, jaccard, names_conflict


@cache
def _phrasings() -> dict[str, tuple[str, ...]]:
    """Every third-person phrasing (casefolded) -> all phrasings of its value, and its name."""
    from training.data.catalogue import KINDS

    index: dict[str, tuple[str, ...]] = {}
    for kind in KINDS.values():
        for value in kind.values:
            options = (*value.third, value.name)
            for phrasing in value.third:
                index[phrasing.casefold()] = options
    return index


class CatalogueMatcher:
    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def options(self, gold: str) -> tuple[str, ...]:
        """What a gold trait may be said as; a trait from outside the catalogue only as itself."""
        return _phrasings().get(gold.casefold(), (gold,))

    def match(self, inferred: Sequence[str], true: Sequence[str]) -> int:
        options = [[(o, content_words(o)) for o in self.options(t)] for t in true]
        scores = [
            [
                max(
                    0.0 if names_conflict(a, text) else jaccard(content_words(a), words)
                    for text, words in choices
                )
                for choices in options
            ]
            for a in inferred
        ]
        return greedy_pairs(scores, self.threshold)
