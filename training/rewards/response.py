"""The response reward: binary, "would the user keep chatting after this reply?".

Two judges: an offline heuristic one (no model, for tests and cheap runs) and the paper's LLM
judge, which plays the user given the profile the policy inferred.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from training.data.profiles import Trait, as_trait
from training.endpoint import ChatEndpoint
from training.simulators.phrasing import topic_words, value_words
from training.text import content_words, is_flattering, similarity

Message = Mapping[str, str]
TraitLike = Trait | Mapping[str, Any] | str

_MARKUP = re.compile(
    r"^\s*(?:[-*•]|\d+[.)]|#+)\s|\*\*|```|__|^\s*\|.*\|\s*$|<\/?[a-z]", re.M | re.I
)
_UNNATURAL = ("as an ai", "as a language model", "i'm an ai", "i am an ai")


class ResponseJudge(Protocol):
    def score(
        self,
        response: str,
        history: Sequence[Message],
        revealed: Sequence[TraitLike],
        inferred: Sequence[str],
    ) -> float:
        """1.0 if the user would keep chatting after `response`, else 0.0. `history` ends with
        the user's message being answered; `revealed` is what the user has said about itself,
        `inferred` the profile the policy wrote this turn."""
        ...


def _split(history: Sequence[Message]) -> tuple[str, list[str]]:
    """The user's last message and the assistant's earlier replies."""
    users = [m["content"] for m in history if m["role"] == "user"]
    return (users[-1] if users else ""), [m["content"] for m in history if m["role"] == "assistant"]


class OfflineResponseJudge:
    """A reply passes when it is short and plain, neither flatters nor repeats, answers the last
    message (shares a word with it or asks back), and, if the last message touched something
    the user revealed, uses it."""

    def __init__(self, max_words: int = 80, repeat_similarity: float = 0.8) -> None:
        self.max_words = max_words
        self.repeat_similarity = repeat_similarity

    def failures(
        self, response: str, history: Sequence[Message], revealed: Sequence[TraitLike] = ()
    ) -> list[str]:
        """Why the reply fails, in words; empty when it passes."""
        text = response.strip()
        if not text:
            return ["empty"]
        last, earlier = _split(history)
        reasons = []
        if len(text.split()) > self.max_words:
            reasons.append("too long")
        if _MARKUP.search(text) or any(p in text.lower() for p in _UNNATURAL):
            reasons.append("not natural")
        if is_flattering(text):
            reasons.append("flattery")
        if any(similarity(text, old) >= self.repeat_similarity for old in earlier) or (
            last and similarity(text, last) >= 0.9
        ):
            reasons.append("repetition")
        words, asked = content_words(text), content_words(last)
        if asked and not (words & asked) and "?" not in text:
            reasons.append("does not answer")
        relevant = [t for t in map(as_trait, revealed) if topic_words(t) & asked]
        if relevant and not any(value_words(t) & words for t in relevant):
            reasons.append("ignores what the user said")
        return reasons

    def score(
        self,
        response: str,
        history: Sequence[Message],
        revealed: Sequence[TraitLike] = (),
        inferred: Sequence[str] = (),
    ) -> float:
        return 0.0 if self.failures(response, history, revealed) else 1.0


KEEP_CHATTING_PROMPT = """\
You are a person chatting with an AI assistant. What you are like:
{profile}

The conversation so far:
{history}

Your last message: {last}
The assistant's reply: {reply}

Would you want to keep chatting after this reply? Say no if it fails any of these: it is \
natural and short; it suits your interests; it answers your message logically; it is \
engaging; it adds something new (no repeating itself, no flattery).
Answer with one word: yes or no."""


def _transcript(history: Sequence[Message]) -> str:
    speaker = {"user": "You", "assistant": "Assistant"}
    lines = [f"{speaker[m['role']]}: {m['content']}" for m in history if m["role"] in speaker]
    return "\n".join(lines) or "(nothing yet)"


class LLMKeepChattingJudge:
    """The paper's response judge: a model plays the user as the policy inferred them and says
    whether it would keep chatting. An answer with neither yes nor no scores 0."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = ChatEndpoint(base_url, model, api_key, client=client)

    def prompt(self, response: str, history: Sequence[Message], inferred: Sequence[str]) -> str:
        cut = max((i for i, m in enumerate(history) if m["role"] == "user"), default=len(history))
        last = history[cut]["content"] if cut < len(history) else ""
        profile = "\n".join(f"- {t}" for t in inferred) or "- (nothing known yet)"
        return KEEP_CHATTING_PROMPT.format(
            profile=profile, history=_transcript(history[:cut]), last=last, reply=response
        )

    def score(
        self,
        response: str,
        history: Sequence[Message],
        revealed: Sequence[TraitLike] = (),
        inferred: Sequence[str] = (),
    ) -> float:
        message = {"role": "user", "content": self.prompt(response, history, inferred)}
        answer = self.endpoint.complete([message], temperature=0.0, max_tokens=4)
        verdict = re.search(r"\b(yes|no)\b", answer, re.I)
        return 1.0 if verdict and verdict.group(1).lower() == "yes" else 0.0
