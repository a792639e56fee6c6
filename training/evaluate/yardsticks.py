"""Transfer-set yardsticks that a notebook cannot pass: pure functions of one user's stored
profiles, each pinned by a unit test (tests/training/test_eval_yardsticks.py).

A notebook that stores every user message verbatim (baselines.py) scores well on the lenient
keyword metrics: one long trait holds the keywords of many facts, a message that denies a fact
still holds its keywords, and a third party's fact stored as the user's is never charged. Here
every match is `KeywordFact.asserted_by` (keywords plus the negation guard, training.eval_data),
and:

- **one trait, one fact**: precision, recall and F1 from a maximum one-to-one matching between
  the traits stored at the end of conversation 1 and the gold facts (an edge where the trait
  asserts the fact), so a trait is credited with one fact at most and a fact with one trait.
- **update accuracy**: of the user's corrections and changes, the share after which the profile
  at the end of conversation 1 asserts every `new` gold fact and none of the `old` forbidden ones.
- **forget compliance**: of the user's forget and dont_store requests, the share whose `old`
  forbidden facts are asserted neither at the end of conversation 1 nor after the first turn of
  conversation 2.
- **stale traits**: traits of the profile at the end of conversation 1 that assert a forbidden
  fact of kind outdated, forgotten or private; counted for users who have such a fact.
- **attribution**: a fact about a third party (`about` is not "user") is attributed correctly when
  a trait asserts it (its groups name the party) and no trait is *misattributed* to it: asserts it
  with the party's words taken out, names no party word, and asserts no gold fact of the user (a
  trait that is some gold fact's is taken to be about that one). Party words: the keywords of
  the fact's groups that start with the `about` value, or that it starts with (so "child" names
  "children"); a group with none is left as it is, and a group of party words alone (`husband`)
  cannot be misattributed.
- **junk**: traits that assert no gold fact, among those stored at the end of conversation 1 and
  those the first turn of conversation 2 added.
- **profile tokens**: whitespace tokens of the profile at the end of conversation 1, to be divided
  by the facts the one-to-one matching covered (pooled over users in transfer.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from training.eval_data import USER, GoldFact, KeywordFact, TransferUser, keyword_match

STALE_KINDS = ("outdated", "forgotten", "private")
"""Forbidden kinds that were true, or were said, and must not be kept."""
UPDATES_KEPT = ("correction", "change")
UPDATES_FORGOTTEN = ("forget", "dont_store")


def max_matching(edges: Sequence[Sequence[int]]) -> dict[int, int]:
    """A maximum bipartite matching by augmenting paths (Kuhn): `edges[i]` lists the right-hand
    nodes left node i may take; returns {right: left}. Small graphs only (a profile's traits)."""
    owner: dict[int, int] = {}

    def augment(left: int, seen: set[int]) -> bool:
        for right in edges[left]:
            if right in seen:
                continue
            seen.add(right)
            if right not in owner or augment(owner[right], seen):
                owner[right] = left
                return True
        return False

    for left in range(len(edges)):
        augment(left, set())
    return owner


def f1_of(precision: float | None, recall: float | None) -> float | None:
    """The harmonic mean; 0 when nothing correct was stored, None where recall does not apply."""
    if recall is None:
        return None
    if not precision or not recall:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def one_to_one(
    profile: Sequence[str], gold: Sequence[GoldFact]
) -> tuple[float | None, float | None, float | None, int]:
    """(precision, recall, F1, facts covered) from the maximum one-to-one matching; None where
    it does not apply, as for the lenient metrics (transfer.py)."""
    edges = [[j for j, fact in enumerate(gold) if fact.asserted_by(t)] for t in profile]
    covered = len(max_matching(edges))
    precision = covered / len(profile) if profile else None
    recall = covered / len(gold) if gold else None
    return precision, recall, f1_of(precision, recall), covered


def _asserts_any(profile: Sequence[str], fact: KeywordFact) -> bool:
    return any(fact.asserted_by(t) for t in profile)


def update_accuracy(user: TransferUser, end: Sequence[str]) -> float | None:
    updates = [u for u in user.updates if u.kind in UPDATES_KEPT]
    if not updates:
        return None
    kept = sum(
        all(_asserts_any(end, user.gold[i]) for i in u.new)
        and not any(_asserts_any(end, user.forbidden[i]) for i in u.old)
        for u in updates
    )
    return kept / len(updates)


def forget_compliance(user: TransferUser, end: Sequence[str], after: Sequence[str]) -> float | None:
    """`after`: the profile after the first turn of conversation 2."""
    requests = [u for u in user.updates if u.kind in UPDATES_FORGOTTEN]
    if not requests:
        return None
    honoured = sum(
        not any(_asserts_any(p, user.forbidden[i]) for i in u.old for p in (end, after))
        for u in requests
    )
    return honoured / len(requests)


def stale(user: TransferUser, end: Sequence[str]) -> tuple[int, int]:
    """(stale traits, traits counted): (0, 0) for a user with no fact that can go stale."""
    facts = [f for f in user.forbidden if f.kind in STALE_KINDS]
    if not facts:
        return 0, 0
    return sum(any(f.asserted_by(t) for f in facts) for t in end), len(end)


def party_words(fact: GoldFact) -> tuple[str, ...]:
    about = fact.about.lower()
    keywords = {k for group in fact.any_of for k in group}
    return tuple(
        sorted(k for k in keywords if about.startswith(k.lower()) or k.lower().startswith(about))
    )


def misattributed(trait: str, fact: GoldFact, gold: Sequence[GoldFact]) -> bool:
    """Whether `trait` stores the third party's `fact` as the user's (module docstring)."""
    party = party_words(fact)
    if fact.about == USER or not party:
        return False
    stripped = tuple(
        rest for group in fact.any_of if (rest := tuple(k for k in group if k not in party))
    )
    return (
        GoldFact(fact.fact, stripped, fact.turn).asserted_by(trait)
        and not keyword_match(trait, tuple((p,) for p in party))
        and not any(g.asserted_by(trait) for g in gold)
    )


def attribution(user: TransferUser, end: Sequence[str]) -> tuple[float | None, int]:
    """(share of third-party facts attributed correctly, or None without any; traits of `end`
    misattributed to one of them)."""
    others = [f for f in user.gold if f.about != USER]
    wrong = {t for t in end for f in others if misattributed(t, f, user.gold)}
    if not others:
        return None, len(wrong)
    right = sum(
        _asserts_any(end, f) and not any(misattributed(t, f, user.gold) for t in end)
        for f in others
    )
    return right / len(others), len(wrong)


def junk(user: TransferUser, end: Sequence[str], after: Sequence[str]) -> tuple[int, int]:
    """(junk traits, traits counted): the end of conversation 1 and what conversation 2 added."""
    added = [t for t in after if t not in end]
    traits = [*end, *added]
    return sum(not any(g.asserted_by(t) for g in user.gold) for t in traits), len(traits)


def profile_tokens(profile: Sequence[str]) -> int:
    return sum(len(trait.split()) for trait in profile)
