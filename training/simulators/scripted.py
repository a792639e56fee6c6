"""An offline, rule-based simulated user: deterministic per seed, no model, fast enough for tests
and for cheap rollouts. It follows RLPA's role-play rules as rules rather than as a prompt."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

from training.data.profiles import Profile, Trait
from training.simulators import others
from training.simulators.base import Message
from training.simulators.phrasing import (
    choose_change,
    replace_trait,
    reveal_options,
    topic_words,
)
from training.text import content_words, is_flattering, similarity

OPENERS = (
    "hey. need some ideas for dinner tonight.",
    "Hi. Can you help me plan my weekend?",
    "got any tips for sleeping better?",
    "What's a good book to read next?",
    "hi, I'm bored. Any ideas for this evening?",
    "How do people stay motivated with exercise?",
    "Need a gift idea for a friend.",
    "Any suggestions for a short trip?",
    "hey, what should I watch tonight?",
    "How do I get better at saving money?",
)
COOL = ("Okay.", "Hm, maybe.", "Sure.", "Not sure yet.", "Fine.")
EVASIVE = ("Not really, no.", "Hard to say.", "Dunno, haven't thought about it.", "Eh, depends.")
WARM = ("Yeah, fair enough.", "Makes sense, I guess.", "Could be, go on.", "Right, okay.")
REPEATED = (
    "You already said that.",
    "That's the same thing you said before.",
    "You keep saying the same thing.",
)
FLATTERED = ("Skip the compliments.", "No need to butter me up.", "Less flattery, please.")
LEADS = ("Honestly, ", "Well, ", "For what it's worth, ", "Thing is, ")
CHANGED = (
    "Actually, that's changed: ", "Oh, update on that: ", "Scratch what I said earlier: ",
    "Sorry, I got that wrong earlier: ", "Correction: ",
)  # fmt: skip
FORGET = (
    "Please forget that {said}.", "Could you not keep that {said}? It's private.",
    "Actually, don't keep that {said}.", "Scratch that, forget that {said}.",
    "I'd rather you didn't remember that {said}, please forget it.",
)  # fmt: skip
PRIVATE = (
    "{sentence} But please don't remember that.", "{sentence} That's private, don't store it.",
    "{sentence} Don't save that though.", "Between us, {sentence_lower} Don't keep that.",
)  # fmt: skip
RECALL = (
    "What do you remember about me?", "What do you know about me so far?",
    "Quick question: what have you saved about me?", "What do you have on me?",
)  # fmt: skip
FORGET_ALL = (
    "Please forget everything you know about me.", "Forget everything about me, please.",
    "Can you wipe whatever you've saved about me?", "Delete everything you remember about me.",
)  # fmt: skip
ALSO = ("Also, ", "Another thing: ", "Different question. ", "", "Oh, and ")
GREETINGS = ("", "", "Hi! ", "Hey, ", "Hello. ", "hi, ", "Morning! ", "Hey there. ")
GREETED = re.compile(r"^(?:hey|hi|hello)[.,!]\s*", re.I)
"""A request that opens with its own hello ("hey. need some ideas...")."""

REPEAT_SIMILARITY = 0.85


class ScriptedUser:
    """Reveals at most ceil(share x profile size) traits per reply: ones the assistant's last
    message makes relevant, and after `warm_up_turns` messages also unprompted ones."""

    def __init__(
        self,
        change_at_turn: int | None = None,
        share: float = 0.15,
        warm_up_turns: int = 2,
        unprompted: float = 0.7,
        opener_fact_share: float = 0.0,
        phrasing_split: str | None = None,
        natural_opener_share: float = 0.0,
        change_share: float = 0.0,
        forget_share: float = 0.0,
        private_share: float = 0.0,
        third_party_share: float = 0.0,
        request_share: float = 0.0,
        memory_share: float = 0.0,
    ) -> None:
        self.change_at_turn = change_at_turn
        """Index of the user message (0 = the opener) that announces a preference change."""
        self.share = share
        self.warm_up_turns = warm_up_turns
        self.unprompted = unprompted
        """Chance, once warmed up, of volunteering a trait nothing asked about."""
        self.phrasing_split = phrasing_split
        """"train" or "test": which share of each trait's phrasings this user says it with."""
        self.opener_fact_share = opener_fact_share
        """Share of conversations whose first message states a fact with its request, as people
        often do ("I'm vegetarian, any dinner ideas?")."""
        self.natural_opener_share = natural_opener_share
        """Of those openers, the share said in one run as people write: after a greeting, two
        facts joined by "and", the request before or after them ("Hi! I'm a nurse and I love
        hiking, so any ideas for the weekend?")."""
        self.change_share = change_share
        """Share of conversations where one message corrects or changes a fact said earlier (at
        the third or fourth message), when `change_at_turn` does not fix one."""
        self.forget_share = forget_share
        """Share of conversations where one later message asks to forget a fact said earlier."""
        self.private_share = private_share
        """Share of conversations where one message says a fact and asks not to store it."""
        self.third_party_share = third_party_share
        """Share of messages that also say something about another person or a pet."""
        self.request_share = request_share
        """Share of messages after the first that bring a new request, nothing personal in it."""
        self.memory_share = memory_share
        """Share of conversations with one memory command: what do you remember, or forget
        everything (that message says nothing else)."""
        self.start(Profile("empty"), 0)

    def start(self, profile: Profile, seed: int) -> None:
        self._profile = Profile(profile.id, list(profile.traits))
        self._rng = random.Random(seed)
        self._revealed: list[Trait] = []
        self._announce: Trait | None = None
        self._spoken: dict[Trait, str] = {}
        self._events: list[tuple[str, Trait | None]] = []
        # Events draw from their own generator, planned here: a conversation without any keeps
        # the sequence it had before they existed.
        events = random.Random(f"{profile.id}:{seed}:events")
        self._events_rng = events
        self._plan: dict[str, int] = {}
        for name, share, turns in (
            ("change", self.change_share, (2, 3)),
            ("forget", self.forget_share, (2, 3)),
            ("private", self.private_share, (1, 2)),
            ("memory", self.memory_share, (2, 3, 4)),
        ):
            if share and events.random() < share:
                self._plan[name] = events.choice(turns)
        if "memory" in self._plan:
            self._plan["forget_all" if events.random() < 0.4 else "recall"] = self._plan.pop(
                "memory"
            )

    def spoken(self, trait: Trait) -> str | None:
        """The sentence this user said `trait` with (its latest), if it was said."""
        return self._spoken.get(trait)

    def revealed(self) -> list[Trait]:
        return list(self._revealed)

    def events(self) -> list[tuple[str, Trait | None]]:
        """What the last message did besides revealing traits: ("forget", trait) asked to
        forget a trait, ("private", trait) said one and asked not to store it, ("recall", None)
        asked what is remembered, ("forget_all", None) asked to forget everything,
        ("request", None) brought a new request, ("change", new) corrected a fact."""
        return list(self._events)

    def true_profile(self) -> Profile:
        return Profile(self._profile.id, list(self._profile.traits))

    def change_preference(self) -> tuple[Trait, Trait] | None:
        change = choose_change(self._profile, self._revealed, self._rng)
        if change is None:
            return None
        old, new = change
        self._profile = replace_trait(self._profile, old, new)
        self._revealed = [t for t in self._revealed if t != old]
        self._announce = new
        return change

    @property
    def per_reply(self) -> int:
        return max(1, math.ceil(self.share * len(self._profile.traits)))

    def reply(self, history: Sequence[Message]) -> str:
        self._events = []
        turn = sum(1 for message in history if message["role"] == "user")
        if self._plan.get("recall") == turn or self._plan.get("forget_all") == turn:
            return self._memory_command(turn)
        text = self._reply(history, turn)
        rng = self._events_rng
        if self.third_party_share and rng.random() < self.third_party_share:
            fact = others.draw(rng)
            trait = Trait(others.PEOPLE, fact.key, fact.stored)
            if trait not in self._profile.traits:
                sentence = others.say(fact, rng)
                self._spoken[trait] = others.plain(fact)  # what "forget that ..." quotes
                self._profile.traits.append(trait)
                self._revealed.append(trait)
                text = f"{sentence} {text}" if turn == 0 else f"{text} {sentence}"
        if turn and self.request_share and rng.random() < self.request_share:
            first = history[0]["content"] if history else ""
            asks = [o for o in OPENERS if o not in first and not GREETED.match(o)]
            request = rng.choice(asks)
            lead = rng.choice(ALSO)
            request = request[:1].upper() + request[1:]
            if lead.endswith((", ", ": ", "and ")) and not request.startswith(("I ", "I'")):
                request = request[:1].lower() + request[1:]
            self._events.append(("request", None))
            text = f"{text} {lead}{request}"
        return text.strip()

    def _memory_command(self, turn: int) -> str:
        if self._plan.get("recall") == turn:
            self._events.append(("recall", None))
            return self._events_rng.choice(RECALL)
        self._events.append(("forget_all", None))
        gone = set(self._revealed)
        kept = [t for t in self._profile.traits if t not in gone]
        self._profile = Profile(self._profile.id, kept)
        self._revealed = []
        return self._events_rng.choice(FORGET_ALL)

    def _forget(self) -> str | None:
        """Ask to forget one revealed trait (said in a sentence that can be quoted back)."""
        quotable = [t for t in self._revealed if _quotable(self._spoken.get(t))]
        if not quotable:
            return None
        trait = self._events_rng.choice(quotable)
        said = _quotable(self._spoken[trait])
        self._profile = Profile(self._profile.id, [t for t in self._profile.traits if t != trait])
        self._revealed = [t for t in self._revealed if t != trait]
        self._events.append(("forget", trait))
        return self._events_rng.choice(FORGET).format(said=said)

    def _reply(self, history: Sequence[Message], turn: int) -> str:
        if turn == 0:
            opener = self._rng.choice(OPENERS)
            hidden = [t for t in self._profile.traits if t not in self._revealed]
            if hidden and self._rng.random() < self.opener_fact_share:
                # (No draw when off: users of earlier runs meet the same sequence.)
                if self.natural_opener_share and self._rng.random() < self.natural_opener_share:
                    return self._natural_opener(hidden, opener)
                trait = self._rng.choice(hidden)
                self._revealed.append(trait)
                return f"{self._say(trait)} {opener[:1].upper()}{opener[1:]}"
            return opener
        said = [m["content"] for m in history if m["role"] == "assistant"]
        last = said[-1] if history and history[-1]["role"] == "assistant" else ""
        change_turn = self.change_at_turn
        if change_turn is None:
            change_turn = self._plan.get("change")
        if turn == change_turn:
            change = self.change_preference()
            if change is not None:
                self._events.append(("change", change[1]))
        parts = self._complaints(last, said[:-1] if last else said)
        if self._plan.get("forget") == turn:
            asked = self._forget()
            if asked is None:  # nothing quotable said yet: ask at the next message instead
                self._plan["forget"] = turn + 1
            else:
                parts.append(asked)
        before = len(self._revealed)
        if self._announce is not None:
            parts.append(self._rng.choice(CHANGED) + self._say(self._announce))
            self._revealed.append(self._announce)
            self._announce = None
        # The announced change counts against the share, like any other revealed trait.
        budget = min(self.per_reply - (len(self._revealed) - before), 3 - len(parts))
        for trait in self._pick(last, turn, budget):
            parts.append(self._say(trait, lead=True))
            self._revealed.append(trait)
        if self._plan.get("private") == turn:
            hidden = [t for t in self._profile.traits if t not in self._revealed]
            if hidden:
                trait = self._events_rng.choice(hidden)
                sentence = self._say(trait)
                form = self._events_rng.choice(PRIVATE)
                lowered = sentence
                if not sentence.startswith(("I ", "I'")):
                    lowered = sentence[:1].lower() + sentence[1:]
                parts.insert(0, form.format(sentence=sentence, sentence_lower=lowered))
                self._profile = Profile(
                    self._profile.id, [t for t in self._profile.traits if t != trait]
                )
                self._events.append(("private", trait))
        if not parts:
            parts.append(self._small_talk(last, turn))
        return " ".join(parts)

    def _natural_opener(self, hidden: list[Trait], request: str) -> str:
        """One or two facts and the request in one message, as people write a first message."""
        rng = self._rng
        facts = rng.sample(hidden, min(len(hidden), rng.choice((1, 2, 2))))
        said: list[str] = []
        for trait in facts:
            sentence = self._say(trait).rstrip(".!")
            self._revealed.append(trait)
            if said and sentence.startswith("My "):
                sentence = "my" + sentence[2:]
            elif said and not sentence.startswith(("I ", "I'")):
                said.append(". " + sentence)  # not a plain first-person clause: a new sentence
                continue
            said.append((" and " if said else "") + sentence)
        facts_text = "".join(said)
        request = request.rstrip()
        greeted = GREETED.match(request) is not None  # the request says its own hello
        form = rng.randrange(3)
        if form == 0 and not greeted:  # the facts, then what they mean for the request
            text = f"{facts_text}, so {request[:1].lower()}{request[1:]}"
        elif form in (0, 1):  # the request first, the facts after it
            text = f"{request} {facts_text}."
        else:
            text = f"{facts_text}. {request[:1].upper()}{request[1:]}"
        greeting = "" if greeted else rng.choice(GREETINGS)
        if greeting and greeting[-2] == "," and not text.startswith(("I ", "I'")):
            text = text[:1].lower() + text[1:]
        elif not greeting or greeting[-2] in "!.":
            text = text[:1].upper() + text[1:]
        return greeting + text

    def _complaints(self, last: str, earlier: Sequence[str]) -> list[str]:
        if last and any(similarity(last, old) >= REPEAT_SIMILARITY for old in earlier):
            return [self._rng.choice(REPEATED)]
        if is_flattering(last):
            return [self._rng.choice(FLATTERED)]
        return []

    def _pick(self, last: str, turn: int, budget: int) -> list[Trait]:
        hidden = [t for t in self._profile.traits if t not in self._revealed]
        self._rng.shuffle(hidden)
        words = content_words(last)
        scored = [(len(topic_words(t) & words), t) for t in hidden]
        relevant = [t for score, t in sorted(scored, key=lambda p: -p[0]) if score > 0]
        chosen = relevant[: max(budget, 0)]
        rest = [t for t in hidden if t not in chosen]
        warm = turn >= self.warm_up_turns
        if warm and rest and len(chosen) < budget and self._rng.random() < self.unprompted:
            chosen.append(rest[0])
        return chosen

    def _say(self, trait: Trait, lead: bool = False) -> str:
        sentence = self._rng.choice(reveal_options(trait, self.phrasing_split))
        self._spoken[trait] = sentence
        # Only sentences opening with "I" keep their capital after a lead-in.
        if lead and sentence.startswith(("I ", "I'")) and self._rng.random() < 0.3:
            return self._rng.choice(LEADS) + sentence
        return sentence

    def _small_talk(self, last: str, turn: int) -> str:
        if "?" in last:
            return self._rng.choice(EVASIVE)
        return self._rng.choice(WARM if turn >= self.warm_up_turns else COOL)


_QUOTABLE = re.compile(r"^(?:I|I'm|I've|I'd|My)\b")


def _quotable(sentence: str | None) -> str | None:
    """A first-person sentence as the clause of "forget that ...", or None when it is not one."""
    if not sentence or "?" in sentence:
        return None
    text = sentence.strip().rstrip(".!")
    if not _QUOTABLE.match(text) or "." in text:
        return None
    return "my" + text[2:] if text.startswith("My") else text
