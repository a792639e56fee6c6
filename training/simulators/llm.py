"""A simulated user played by a chat model behind any OpenAI-compatible endpoint."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import httpx

from training.data.profiles import Profile, Trait
from training.endpoint import ChatEndpoint
from training.simulators.base import Message
from training.simulators.phrasing import choose_change, replace_trait, value_words
from training.text import content_words, sentences

RULES = """\
You are role-playing a person chatting with an AI assistant. Stay in character; never say you \
are an AI or that you are role-playing.

Who you are (private, the assistant cannot see this):
{profile}

How you talk:
- Your first message is a short, ordinary request or question. It reveals nothing about you.
- Give away little. In one message mention at most {per_reply} of the facts above, and only \
when the assistant's last message makes them relevant. Never list facts about yourself.
- Start cool and terse. Open up slowly as the chat goes on, and only if the assistant is good \
company.
- Write like a real person texting: casual, plain words, at most three sentences.
- If you dislike something the assistant said, say so plainly. If it repeats itself, point that \
out. If it flatters you, tell it to stop.
- Never start a new topic yourself; respond to what the assistant said."""

CHANGE_NOTE = """
Something changed: it is no longer true that you {old}. Now you {new}. Mention this change \
briefly in your next message."""

OPENING_CUE = "(The chat is starting. Write your first message to the assistant.)"


def flip_roles(history: Sequence[Message]) -> list[dict[str, str]]:
    """The model plays the user, so the chat's roles swap: it writes the "assistant" turns."""
    swapped = {"user": "assistant", "assistant": "user"}
    return [{"role": swapped[m["role"]], "content": m["content"]} for m in history]


class LLMUser:
    """Thin client: the rules live in the prompt. What it revealed is an estimate (the value's
    words appearing in what it said), since a model's wording cannot be read back exactly."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        share: float = 0.15,
        temperature: float = 0.8,
        max_tokens: int = 120,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = ChatEndpoint(base_url, model, api_key, client=client)
        self.share = share
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        self.start(Profile("empty"), 0)

    def start(self, profile: Profile, seed: int) -> None:
        self._profile = Profile(profile.id, list(profile.traits))
        self._rng = random.Random(seed)
        self._seed = seed
        self._said: list[str] = []
        self._change: tuple[Trait, Trait] | None = None

    def system_prompt(self) -> str:
        per_reply = max(1, math.ceil(self.share * len(self._profile.traits)))
        facts = "\n".join(f"- {trait.text}" for trait in self._profile.traits) or "- (nothing)"
        prompt = RULES.format(profile=facts, per_reply=per_reply)
        if self._change is not None:
            old, new = self._change
            prompt += CHANGE_NOTE.format(old=old.text, new=new.text)
        return prompt

    def reply(self, history: Sequence[Message]) -> str:
        messages = [{"role": "system", "content": self.system_prompt()}, *flip_roles(history)]
        if not history:
            messages.append({"role": "user", "content": OPENING_CUE})
        # A seed per turn keeps a rerun of the same conversation reproducible where the server
        # honours it; servers that do not simply ignore the field.
        text = self.endpoint.complete(messages, seed=self._seed + len(history), **self.params)
        text = " ".join(sentences(text.strip())[:3])
        self._said.append(text)
        self._change = None
        return text

    def revealed(self) -> list[Trait]:
        said = set().union(*(content_words(text) for text in self._said))
        return [t for t in self._profile.traits if value_words(t) & said]

    def true_profile(self) -> Profile:
        return Profile(self._profile.id, list(self._profile.traits))

    def change_preference(self) -> tuple[Trait, Trait] | None:
        change = choose_change(self._profile, self.revealed(), self._rng)
        if change is not None:
            self._profile = replace_trait(self._profile, *change)
            self._change = change
        return change
