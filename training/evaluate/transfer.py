"""Metrics on the hand-written transfer set (`training.eval_data`), as pure functions of the
stored profiles: after each turn of conversation 1, and after the first turn of conversation 2.

Matching is the set's own keyword matching (`GoldFact.matches`, `ForbiddenFact.matches`): a gold
fact is *stored* when some stored trait matches it; a stored trait is *correct* when it matches
some gold fact. Per user, then over users (the unit tests pin each definition):

- **precision**: correct stored traits / stored traits, at the end of conversation 1. A user
  with nothing stored has no precision; a user with no gold facts who stores anything scores 0.
- **recall**: stored gold facts / gold facts, at the end of conversation 1; users with no gold
  facts have none.
- **F1**: the harmonic mean of the user's precision and recall, 0 when nothing correct was
  stored (including nothing stored at all); users with no gold facts have none. So users with
  empty gold count toward precision only.
- **retention**: of the gold facts stored at the end of conversation 1, the share still stored
  after the first turn of conversation 2; users who stored no gold fact have none.
- **contradiction rate**: every distinct trait stored at any point (any turn of conversation 1,
  or after the first turn of conversation 2) that matches a forbidden fact, over all such
  traits, pooled over users (a ratio of sums, so a user who stores one wrong trait does not
  weigh like a user who stores twenty).
- **turn-1 recall**: the share of the gold facts said in the first message (`turn == 1`) that
  are stored after turn 1; users with no such fact have none.
- **response**: the share of the user's replies (every played turn of both conversations) that
  the eval-only judge (`training.evaluate.judge`, never a training reward) passes: a request
  gets an answer, and no question asks for a gold fact the user had already said (in
  conversation 2, every gold fact counts as said). Users whose replies were not recorded have
  none.
- **run-on rate**: stored traits at the end of conversation 1 that run on past a statement (a
  question mark, or a second sentence: "works nights, so they sleep late. What age are you?"),
  over all traits stored then, pooled over users like the contradiction rate. The keyword gold
  counts such a trait as correct when the fact is in it; this says how clean profiles read.

Precision, recall, F1, retention and turn-1 recall are means over the users that have them.
Every aggregate comes with a percentile bootstrap 95% interval over users (users resampled with
replacement, seeded), so two systems' intervals say whether 46 users can tell them apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.eval_data import KeywordFact, TransferUser

METRICS = (
    "f1",
    "precision",
    "recall",
    "retention",
    "contradiction_rate",
    "turn1_recall",
    "response",
    "run_on_rate",
)
POOLED = ("contradiction_rate", "run_on_rate")
"""Ratios of sums over users; the rest are means over users."""
_SENTENCE_BREAK = re.compile(r"(\w+)[.!;]\s+[A-Z]")
_ABBREVIATIONS = frozenset("st dr mr mrs ms mt jr sr no vs etc".split())
RESAMPLES = 2000


@dataclass(frozen=True)
class Exchange:
    conversation: int  # 1 or 2
    turn: int  # 1-based, within its conversation
    message: str
    reply: str


@dataclass(frozen=True)
class UserProfiles:
    """What one user's run left in the store."""

    user: TransferUser
    conversation1: Sequence[Sequence[str]]
    """The stored profile after each turn of conversation 1, turn 1 first."""
    conversation2: Sequence[str]
    """The stored profile after the first turn of conversation 2."""
    exchanges: Sequence[Exchange] = ()
    """Every played turn's message and reply, in order (for the response score)."""


@dataclass(frozen=True)
class UserMetrics:
    """One user's metrics; None where the metric does not apply to this user."""

    user: str
    precision: float | None
    recall: float | None
    f1: float | None
    retention: float | None
    contradictions: int
    """Distinct stored traits, at any point, that match a forbidden fact."""
    traits_seen: int
    """Distinct traits stored at any point."""
    turn1_recall: float | None
    response: float | None = None
    run_on: int = 0
    """Traits stored at the end of conversation 1 that run on past a statement."""
    traits_end: int = 0
    """Traits stored at the end of conversation 1."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    users: int
    """How many users the metric applies to."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored(fact: KeywordFact, profile: Sequence[str]) -> bool:
    return any(fact.matches(trait) for trait in profile)


def _share(facts: Sequence[KeywordFact], profile: Sequence[str]) -> float | None:
    return sum(stored(f, profile) for f in facts) / len(facts) if facts else None


def user_metrics(run: UserProfiles) -> UserMetrics:
    if not run.conversation1:
        raise ValueError(f"{run.user.id}: no profile after conversation 1")
    gold = run.user.gold
    end = run.conversation1[-1]
    precision = sum(any(g.matches(t) for g in gold) for t in end) / len(end) if end else None
    recall = _share(gold, end)
    f1 = None
    if recall is not None:
        f1 = 0.0 if not precision or not recall else 2 * precision * recall / (precision + recall)
    kept = [g for g in gold if stored(g, end)]
    seen = {t for profile in [*run.conversation1, run.conversation2] for t in profile}
    contradictions = sum(any(f.matches(t) for f in run.user.forbidden) for t in seen)
    turn1 = [g for g in gold if g.turn == 1]
    return UserMetrics(
        user=run.user.id,
        precision=precision,
        recall=recall,
        f1=f1,
        retention=_share(kept, run.conversation2),
        contradictions=contradictions,
        traits_seen=len(seen),
        turn1_recall=_share(turn1, run.conversation1[0]),
        response=response_score(run.user, run.exchanges),
        run_on=sum(bool(runs_on(t)) for t in end),
        traits_end=len(end),
    )


def runs_on(trait: str) -> bool:
    """Whether a stored trait goes on past one statement (a question, a second sentence)."""
    text = trait.strip().rstrip(".!")
    if "?" in text:
        return True
    return any(m.group(1).lower() not in _ABBREVIATIONS for m in _SENTENCE_BREAK.finditer(text))


def response_score(user: TransferUser, exchanges: Sequence[Exchange]) -> float | None:
    """The share of replies the eval-only judge passes; None without replies."""
    from training.evaluate.judge import judge_reply

    if not exchanges:
        return None
    passed = 0
    for x in exchanges:
        said = [g for g in user.gold if x.conversation == 2 or g.turn < x.turn]
        known = [group for g in said for group in g.any_of]
        passed += judge_reply(x.reply, x.message, known).passed
    return passed / len(exchanges)


def bootstrap(
    numerators: Sequence[float],
    denominators: Sequence[float] | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate | None:
    """sum(numerators) / sum(denominators) (the mean, without denominators) with a percentile
    bootstrap 95% interval over the users (one entry each); None for no users."""
    import numpy as np

    num = np.asarray(numerators, dtype=float)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ValueError("one numerator and one denominator per user")
    if num.size == 0:
        return None
    if (den <= 0).any():
        raise ValueError("a user with nothing to count has no place in the estimate")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, num.size, size=(resamples, num.size))
    ratios = num[picks].sum(axis=1) / den[picks].sum(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Estimate(float(num.sum() / den.sum()), float(low), float(high), int(num.size))


def summarise(
    per_user: Sequence[UserMetrics], *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Estimate | None]:
    """Every metric in METRICS over users, with its interval; None where no user has it."""

    def mean(name: str) -> Estimate | None:
        values = [v for u in per_user if (v := getattr(u, name)) is not None]
        return bootstrap(values, resamples=resamples, seed=seed)

    seen = [u for u in per_user if u.traits_seen]
    ended = [u for u in per_user if u.traits_end]
    pooled = {
        "contradiction_rate": bootstrap(
            [u.contradictions for u in seen],
            [u.traits_seen for u in seen],
            resamples=resamples,
            seed=seed,
        ),
        "run_on_rate": bootstrap(
            [u.run_on for u in ended],
            [u.traits_end for u in ended],
            resamples=resamples,
            seed=seed,
        ),
    }
    return {name: pooled[name] if name in POOLED else mean(name) for name in METRICS}


HEADINGS = {
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "retention": "retention",
    "contradiction_rate": "contradiction rate",
    "turn1_recall": "turn-1 recall",
    "response": "response (eval judge)",
    "run_on_rate": "run-on traits",
}


def _cell(estimate: dict[str, Any] | None) -> str:
    if estimate is None:
        return "n/a"
    return (
        f"{estimate['mean']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}] "
        f"(n={estimate['users']})"
    )


def markdown(results: dict[str, Any]) -> str:
    """The metric table of a transfer report (as `transfer_protocol` writes it)."""
    lines = [
        f"# {results.get('title', 'Transfer set')}",
        "",
        f"Transfer set `{results['transfer_set']['path']}` ({results['transfer_set']['users']} "
        "users). Each cell: mean [bootstrap 95% interval] (n = users it applies to); "
        "definitions in training/evaluate/transfer.py.",
        "",
        "| system | " + " | ".join(HEADINGS[name] for name in METRICS) + " |",
        "| --- " * (len(METRICS) + 1) + "|",
    ]
    for system in results["systems"]:
        cells = [_cell(system["metrics"][name]) for name in METRICS]
        lines.append("| " + " | ".join([system["name"], *cells]) + " |")
    return "\n".join(lines) + "\n"
