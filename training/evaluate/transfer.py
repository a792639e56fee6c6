"""Metrics on the hand-written transfer set (`training.eval_data`), as pure functions of the
stored profiles: after each turn of conversation 1, and after the first turn of conversation 2.

Two kinds of matching. The *lenient* metrics (the shipped card's) use the set's keyword matching
(`GoldFact.matches`): a gold fact is stored when some trait holds one of its keyword groups, and
a trait is correct when it holds some gold fact's. A notebook that stores every user message
verbatim passes them as well as a trained model (baselines.py), so the headline metrics are the
*yardsticks* (yardsticks.py): every match there is `asserted_by` (keywords plus the negation
guard), and one trait is credited with one fact at most. Per user, then over users (the unit
tests pin each definition):

Headline (yardsticks.py has the definitions):
- **F1, precision, recall (one-to-one)**, at the end of conversation 1; the same None rules as
  the lenient ones below.
- **junk rate**: traits asserting no gold fact, at the end of conversation 1 plus those the first
  turn of conversation 2 added, over those traits; pooled.
- **profile tokens per covered fact**: whitespace tokens of the profile at the end of
  conversation 1 over the gold facts the one-to-one matching covered; pooled (a ratio of sums).
- **update accuracy**, **forget compliance** (users without such updates have none), **stale
  rate** (pooled over the traits at the end of conversation 1 of users with a forbidden fact of
  kind outdated, forgotten or private), **attribution** (users without a third-party fact have
  none) and **misattributed traits** (pooled over the traits at the end of conversation 1).
- **contradiction rate**: distinct traits of the final profiles (the end of conversation 1, and
  after the first turn of conversation 2) that assert a forbidden fact (`ForbiddenFact.matches`,
  the negation guard), over the distinct traits of those profiles; pooled. A trait is not
  excused for holding a "not" that negates something else.

Conversation:
- **retention**: of the gold facts stored (lenient) at the end of conversation 1, the share still
  stored after the first turn of conversation 2; users who stored no gold fact have none.
- **turn-1 recall**: the share of the gold facts said in the first message (`turn == 1`) that
  are stored (lenient) after turn 1; users with no such fact have none.
- **requests answered**: of the played turns whose message is a request (`judge.is_request`), the
  share whose reply gives something (`judge.answers`: the eval judge's own test of a reply to a
  request); users with no request, or whose replies were not recorded, have none.
- **response**: the share of the user's replies (every played turn of both conversations) that
  the eval-only judge (`training.evaluate.judge`, never a training reward) passes: a request
  gets an answer, and no question asks for a gold fact the user had already said (in
  conversation 2, every gold fact counts as said). Users whose replies were not recorded (the
  notebooks) have none.
- **run-on rate**: stored traits at the end of conversation 1 that run on past a statement (a
  question mark, or a second sentence: "works nights, so they sleep late. What age are you?"),
  over all traits stored then, pooled over users.

Lenient (keyword matching, as on the card):
- **precision**: correct stored traits / stored traits, at the end of conversation 1. A user
  with nothing stored has no precision; a user with no gold facts who stores anything scores 0.
- **recall**: stored gold facts / gold facts, at the end of conversation 1; users with no gold
  facts have none.
- **F1**: the harmonic mean of the user's precision and recall, 0 when nothing correct was
  stored (including nothing stored at all); users with no gold facts have none. So users with
  empty gold count toward precision only.

Means are over the users that have the metric; pooled rates are ratios of sums over the users
with something to count. Every aggregate comes with a percentile bootstrap 95% interval over
users (intervals.py), and `paired_differences` gives one system's per-user difference to another
on the same users, with a paired interval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.eval_data import KeywordFact, TransferUser
from training.evaluate import yardsticks
from training.evaluate.intervals import RESAMPLES, Estimate, bootstrap, paired_bootstrap

HEADLINE = (
    "f1_one_to_one",
    "precision_one_to_one",
    "recall_one_to_one",
    "junk_rate",
    "tokens_per_fact",
)
UPDATES = (
    "update_accuracy",
    "forget_compliance",
    "stale_rate",
    "contradiction_rate",
    "attribution",
    "misattribution_rate",
)
CONVERSATION = ("retention", "turn1_recall", "requests_answered", "response", "run_on_rate")
LENIENT = ("f1", "precision", "recall")
METRICS = (*HEADLINE, *UPDATES, *CONVERSATION, *LENIENT)
POOLED = {
    "junk_rate": ("junk", "junk_traits"),
    "tokens_per_fact": ("profile_tokens", "covered"),
    "stale_rate": ("stale", "stale_traits"),
    "contradiction_rate": ("contradictions", "traits_final"),
    "misattribution_rate": ("misattributed", "traits_end"),
    "run_on_rate": ("run_on", "traits_end"),
}
"""Ratios of sums over users: (numerator, denominator) fields of UserMetrics; the rest are
means over users."""
PAIRED = (*HEADLINE, *UPDATES, "f1")
"""The metrics compared user by user against the notebooks (the lenient F1 to show the gap)."""
LOWER_IS_BETTER = frozenset(POOLED)
"""Every pooled rate counts something unwanted (tokens, for the size of a profile)."""
_SENTENCE_BREAK = re.compile(r"(\w+)[.!;]\s+[A-Z]")
_ABBREVIATIONS = frozenset("st dr mr mrs ms mt jr sr no vs etc".split())


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
    """Every played turn's message and reply, in order (none for a system that does not reply)."""


@dataclass(frozen=True)
class UserMetrics:
    """One user's metrics; None where the metric does not apply to this user. Counts are the
    numerators and denominators of the pooled rates (POOLED)."""

    user: str
    precision: float | None
    recall: float | None
    f1: float | None
    retention: float | None
    contradictions: int
    """Distinct traits of the final profiles that assert a forbidden fact."""
    traits_final: int
    """Distinct traits of the final profiles (end of conversation 1, after turn 1 of conv. 2)."""
    turn1_recall: float | None
    response: float | None = None
    run_on: int = 0
    """Traits stored at the end of conversation 1 that run on past a statement."""
    traits_end: int = 0
    """Traits stored at the end of conversation 1."""
    precision_one_to_one: float | None = None
    recall_one_to_one: float | None = None
    f1_one_to_one: float | None = None
    covered: int = 0
    """Gold facts covered by the one-to-one matching."""
    profile_tokens: int = 0
    junk: int = 0
    junk_traits: int = 0
    update_accuracy: float | None = None
    forget_compliance: float | None = None
    stale: int = 0
    stale_traits: int = 0
    attribution: float | None = None
    misattributed: int = 0
    requests_answered: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored(fact: KeywordFact, profile: Sequence[str]) -> bool:
    return any(fact.matches(trait) for trait in profile)


def _share(facts: Sequence[KeywordFact], profile: Sequence[str]) -> float | None:
    return sum(stored(f, profile) for f in facts) / len(facts) if facts else None


def user_metrics(run: UserProfiles) -> UserMetrics:
    if not run.conversation1:
        raise ValueError(f"{run.user.id}: no profile after conversation 1")
    user, end, after = run.user, run.conversation1[-1], run.conversation2
    precision = sum(any(g.matches(t) for g in user.gold) for t in end) / len(end) if end else None
    recall = _share(user.gold, end)
    final = {*end, *after}
    precision_1, recall_1, f1_1, covered = yardsticks.one_to_one(end, user.gold)
    junk, junk_traits = yardsticks.junk(user, end, after)
    stale, stale_traits = yardsticks.stale(user, end)
    attribution, misattributed = yardsticks.attribution(user, end)
    return UserMetrics(
        user=user.id,
        precision=precision,
        recall=recall,
        f1=yardsticks.f1_of(precision, recall),
        retention=_share([g for g in user.gold if stored(g, end)], after),
        contradictions=sum(any(f.matches(t) for f in user.forbidden) for t in final),
        traits_final=len(final),
        turn1_recall=_share([g for g in user.gold if g.turn == 1], run.conversation1[0]),
        response=response_score(user, run.exchanges),
        run_on=sum(bool(runs_on(t)) for t in end),
        traits_end=len(end),
        precision_one_to_one=precision_1,
        recall_one_to_one=recall_1,
        f1_one_to_one=f1_1,
        covered=covered,
        profile_tokens=yardsticks.profile_tokens(end),
        junk=junk,
        junk_traits=junk_traits,
        update_accuracy=yardsticks.update_accuracy(user, end),
        forget_compliance=yardsticks.forget_compliance(user, end, after),
        stale=stale,
        stale_traits=stale_traits,
        attribution=attribution,
        misattributed=misattributed,
        requests_answered=requests_answered(run.exchanges),
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


def requests_answered(exchanges: Sequence[Exchange]) -> float | None:
    """The share of request turns whose reply gives something; None without a request."""
    from training.evaluate.judge import answers, is_request

    asked = [x for x in exchanges if is_request(x.message)]
    return sum(answers(x.reply, x.message) for x in asked) / len(asked) if asked else None


def terms(user: UserMetrics, name: str) -> tuple[float, float] | None:
    """The user's (numerator, denominator) of a metric; None where it has nothing to count."""
    if name in POOLED:
        num, den = (getattr(user, field) for field in POOLED[name])
        return (num, den) if num or den else None
    value = getattr(user, name)
    return None if value is None else (value, 1.0)


def summarise(
    per_user: Sequence[UserMetrics], *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Estimate | None]:
    """Every metric in METRICS over users, with its interval; None where no user has it."""
    summary: dict[str, Estimate | None] = {}
    for name in METRICS:
        counted = [t for u in per_user if (t := terms(u, name)) is not None]
        summary[name] = bootstrap(
            [n for n, _ in counted], [d for _, d in counted], resamples=resamples, seed=seed
        )
    return summary


def counts(per_user: Sequence[UserMetrics]) -> dict[str, int]:
    """Totals over users of what the pooled rates count."""
    fields = ("misattributed", "stale", "contradictions", "junk", "covered", "profile_tokens")
    return {field: sum(getattr(u, field) for u in per_user) for field in fields}


def paired_differences(
    system: Sequence[UserMetrics],
    baseline: Sequence[UserMetrics],
    *,
    metrics: Sequence[str] = PAIRED,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Estimate | None]:
    """`system` minus `baseline` on each of `metrics`, over the users both were read on:
    a mean over the users that have it under both, a pooled rate over the users either counts
    something for (the other then counts 0 of 0). Positive: the system's value is higher."""
    theirs = {u.user: u for u in baseline}
    pairs = [(u, theirs[u.user]) for u in system if u.user in theirs]
    differences: dict[str, Estimate | None] = {}
    for name in metrics:
        a, b = [], []
        for ours, other in pairs:
            mine, yours = terms(ours, name), terms(other, name)
            if name in POOLED and (mine or yours):
                a.append(mine or (0.0, 0.0))
                b.append(yours or (0.0, 0.0))
            elif mine and yours:
                a.append(mine)
                b.append(yours)
        differences[name] = paired_bootstrap(a, b, resamples=resamples, seed=seed)
    return differences
