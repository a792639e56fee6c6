"""An eval-only response judge: does the reply do what the user asked, without asking for what
the user already said?

It is deliberately not the training reward (training.rewards.response): a policy must never be
judged by the function it was optimised against. It is stricter where the reward was easy to
pass: a reply made only of questions fails a request (an echo question such as "espressos?
Meaning?" or a template question answers nothing), and a question about something the user has
already told fails whatever else the reply says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from training.text import content_words

# A user message that asks for something to be given: ideas, advice, a recommendation, a plan.
_REQUEST = re.compile(
    r"\b(?:ideas?|suggest\w*|recommend\w*|tips?|advice|help|plan|what (?:should|could|can|do)"
    r"|how (?:do|can|should|could)|which|any (?:good|nice)|where (?:should|can|could)"
    r"|can you|could you|give me|need (?:a|an|some))\b",
    re.I,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
# A sentence that gives something: at least this many content words that the user did not say.
MIN_NEW_WORDS = 3


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def is_request(message: str) -> bool:
    return bool(_REQUEST.search(message))


def _giving(sentences: Sequence[str], user_message: str) -> list[str]:
    """The statements that give something: enough content words the user did not say."""
    said = content_words(user_message)
    statements = [s for s in sentences if not s.endswith("?")]
    return [s for s in statements if len(content_words(s) - said) >= MIN_NEW_WORDS]


def answers(reply: str, user_message: str) -> bool:
    """Whether the reply gives something (a statement, not a question, with new content): what
    `judge_reply` asks of the reply to a request, alone."""
    return bool(_giving(_sentences(reply), user_message))


def judge_reply(reply: str, user_message: str, known: Sequence[Sequence[str]] = ()) -> Verdict:
    """`known`: what the user has already said about themselves, each fact as keywords (all must
    appear in a question for it to count as asking for it again)."""
    reasons: list[str] = []
    sentences = _sentences(reply)
    if not sentences:
        return Verdict(False, ("empty reply",))
    said = content_words(user_message)
    giving = _giving(sentences, user_message)
    if is_request(user_message) and not giving:
        reasons.append("asked for something and got no answer")
    for question in (s for s in sentences if s.endswith("?")):
        lowered = question.lower()
        for keywords in known:
            if keywords and all(k.lower() in lowered for k in keywords):
                reasons.append(f"asks again for what the user said ({' '.join(keywords)})")
                break
    if not giving and len(content_words(reply) - said) < MIN_NEW_WORDS:
        reasons.append("echoes the user without adding anything")
    return Verdict(not reasons, tuple(reasons))


# Words of a trait that say how, not what ("works as a nurse": only "nurse" names the fact).
_PREDICATES = content_words("likes loves enjoys works lives has prefers wants is used to")


class EvalJudge:
    """`judge_reply` as a `training.rewards.ResponseJudge`, for `rlpa eval --judge eval` on
    simulated users: 1.0 when the reply passes. What the user has revealed is the known facts
    (each trait's content words, less the verbs that only frame it)."""

    def score(
        self,
        response: str,
        history: Sequence[Mapping[str, str]],
        revealed: Sequence[object],
        inferred: Sequence[str],
    ) -> float:
        message = history[-1]["content"] if history else ""
        texts = (getattr(trait, "text", trait) for trait in revealed)
        known = [sorted(content_words(str(t)) - _PREDICATES) for t in texts]
        return 1.0 if judge_reply(response, message, [k for k in known if k]).passed else 0.0
