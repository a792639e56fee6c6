"""Warm-start conversations for SFT: the scripted user chats with a template assistant.

Every assistant turn is written in the contract format (server.rlpa.render_output): its profile is
exactly the traits the user has revealed so far, its reply a short template that picks up the
latest revealed trait and asks about something not yet known. SFT on these teaches the format and
the habit of asking and listening; RL then teaches the content.

Each assistant turn becomes its own prompt/completion example, built with the same
`build_messages` the gateway uses: older assistant turns show only their reply, the most recent one
its profile too. One multi-turn sequence cannot show both views, which is why SFT trains on
per-turn examples rather than on whole conversations.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from server.rlpa import ProfileChange, build_messages, render_change, render_output
from training.data.profiles import Profile, Trait
from training.simulators.base import Message, UserSimulator
from training.simulators.others import PEOPLE
from training.simulators.phrasing import third_person
from training.simulators.scripted import GREETED, OPENERS

# One question per catalogue kind; each uses a topic word of its kind so the scripted user, who
# reveals what the assistant's last message makes relevant, can answer it.
QUESTIONS = {
    "occupation": "What kind of job do you do?",
    "family": "Are you close to your family?",
    "marital": "Are you in a relationship at the moment?",
    "children": "Do you have kids?",
    "pets": "Do you have any pets?",
    "location": "Which city do you live in?",
    "age": "If you don't mind me asking, what age group are you in?",
    "education": "What did you study at school or college?",
    "living": "What's your home like, a flat or a house?",
    "commute": "How do you commute, by car, bike or bus?",
    "schedule": "What do your working hours look like?",
    "languages": "Which languages do you speak?",
    "budget": "Roughly what budget should I keep in mind?",
    "tech": "Are you comfortable with apps and gadgets?",
    "chronotype": "Are you more of a morning person or a night owl?",
    "diet": "Do you follow any particular diet?",
    "cuisine": "What's your favourite cuisine to eat?",
    "drink": "Coffee, tea, or something else to drink?",
    "hobbies": "What do you do for fun in your free time?",
    "sport": "Do you play any sport or go to the gym?",
    "music": "What kind of music do you listen to?",
    "reading": "Do you read much? Any favourite books?",
    "travel": "Do you like to travel on holiday?",
    "screen": "What shows or movies do you enjoy?",
    "allergies": "Any food allergies I should know about?",
    "health": "Any health issues I should keep in mind?",
    "answer_length": "Do you prefer brief answers or more detail?",
    "tone": "Should I keep things casual or more formal in this chat?",
    "personality": "Do you enjoy parties with friends, or prefer quiet time?",
    "goals": "Is there a goal you're working towards right now?",
    "values": "What matters most to you day to day?",
}
ACKNOWLEDGE = (
    "Ah, so {clause}.",
    "Good to know {clause}.",
    "Thanks, so {clause}.",
    "Noted, {clause}.",
)
OPENING = ("Happy to help with that.", "Sure, let's figure it out.", "I can help with that.")
# What a teacher says to each request the scripted user opens with: an answer first, so the
# student learns to answer what was asked (not only to ask questions back).
ANSWERS: dict[str, tuple[str, ...]] = {
    OPENERS[0]: ("A veggie stir-fry with rice is quick and cheap.",
                 "Pasta with tomatoes, garlic and spinach takes twenty minutes."),
    OPENERS[1]: ("A short hike on Saturday and a slow brunch on Sunday is a good balance.",
                 "Try one active plan, like a bike ride, and one restful one, like a film night."),
    OPENERS[2]: ("Keep the same bedtime, and no screens for the last half hour.",
                 "A cool, dark room and no coffee after lunch help most people."),
    OPENERS[3]: ("'The Martian' is a fun, fast read.",
                 "Try 'Project Hail Mary' if you like clever problem solving."),
    OPENERS[4]: ("You could try a new recipe, a board game, or a long walk with a podcast.",
                 "A film marathon or a short evening class could be fun."),
    OPENERS[5]: ("Small, regular sessions and a friend to train with keep most people going.",
                 "Pick something you enjoy and track a simple weekly goal."),
    OPENERS[6]: ("A nice notebook or a cooking class voucher usually goes down well.",
                 "Something tied to their hobby, like a book or a small gadget, works well."),
    OPENERS[7]: ("A weekend in a nearby city with good walks and food is easy to plan.",
                 "Somewhere a short train ride away saves time and money."),
    OPENERS[8]: ("A light comedy series is an easy pick for tonight.",
                 "A well-reviewed documentary could be a nice change."),
    OPENERS[9]: ("Set up an automatic transfer to savings on payday.",
                 "Track spending for a month, then cut the one category that surprises you."),
}  # fmt: skip
NEUTRAL = ("Fair enough.", "No problem.", "Okay, no worries.", "Got it.")
FORGOTTEN = ("Done, I've forgotten that.", "Okay, I won't keep that.", "Sure, that's gone.",
             "No problem, I've dropped that.")  # fmt: skip
NOT_KEPT = ("Understood, I won't keep that.", "Got it, I won't save that part.",
            "Sure, that stays between us and out of my notes.")  # fmt: skip
CLEARED = ("Done. I've cleared everything I had saved about you.",
           "Okay, everything I knew about you is forgotten.",
           "All gone: I no longer have anything saved about you.")  # fmt: skip
NOTHING_KEPT = ("I don't have anything saved about you yet.",
                "Nothing so far. Tell me whatever you'd like me to keep in mind.")  # fmt: skip
RECALLED = ("Here's what I remember: {facts}.", "So far I know that {facts}.",
            "What I have saved: {facts}.")  # fmt: skip
ASK_AFTER_ANSWER = 0.35
"""How often an answer is followed by a question: answering is the point, asking a habit."""

_THIRD_PERSON = {
    "is": "you're", "isn't": "you aren't", "has": "you have", "hasn't": "you haven't",
    "does": "you do", "doesn't": "you don't", "was": "you were", "wasn't": "you weren't",
    "goes": "you go", "can": "you can", "can't": "you can't",
}  # fmt: skip
_PRONOUNS = [(r"\btheir\b", "your"), (r"\bthemselves\b", "yourself"), (r"\bthey\b", "you"),
             (r"\bthem\b", "you"), (r"\bthey're\b", "you're")]  # fmt: skip
_ADVERBS = frozenset("always often usually really still never sometimes rarely mostly".split())


def second_person(text: str) -> str:
    """A profile trait ("works as a nurse") as said to the user ("you work as a nurse")."""
    for pattern, replacement in _PRONOUNS:
        text = re.sub(pattern, replacement, text.strip().rstrip("."), flags=re.I)
    words = text.split()
    lead = []
    while len(words) > 1 and words[0].lower() in _ADVERBS:
        lead.append(words.pop(0))
    if not words:
        return "you " + " ".join(lead)
    verb, rest = words[0].lower(), words[1:]
    if verb in _THIRD_PERSON:
        subject, *tail = _THIRD_PERSON[verb].split()
        return " ".join([subject, *lead, *tail, *rest])
    if verb.endswith("ies") and len(verb) > 4:
        verb = verb[:-3] + "y"
    elif verb.endswith(("ches", "shes", "sses", "xes")):
        verb = verb[:-2]
    elif verb.endswith("s") and not verb.endswith("ss"):
        verb = verb[:-1]
    return " ".join(["you", *lead, verb, *rest])


def template_reply(
    new: Sequence[Trait],
    known_kinds: set[str],
    asked: set[str],
    rng: random.Random,
    hidden_kinds: set[str] = frozenset(),  # type: ignore[assignment]
    first: bool = False,
    answer: str | None = None,
    ask: bool = True,
) -> tuple[str, str | None]:
    """The assistant's reply and the kind it asks about (None when it has nothing left to ask).

    Half the time the question goes to a kind the user really has (`hidden_kinds`): a teacher's
    privilege, so conversations reveal enough to learn profile tracking from. The student cannot
    see the profile, but it learns the same habit: ask about one new thing each turn."""
    opening = (
        rng.choice(ACKNOWLEDGE).format(clause=second_person(new[-1].text))
        if new
        else rng.choice(OPENING if first else NEUTRAL)
    )
    if answer:
        opening = f"{opening} {answer}"
    open_kinds = [k for k in QUESTIONS if k not in known_kinds and k not in asked]
    if not open_kinds or not ask:
        return opening, None
    likely = [k for k in open_kinds if k in hidden_kinds]
    kind = rng.choice(likely if likely and rng.random() < 0.5 else open_kinds)
    return f"{opening} {QUESTIONS[kind]}", kind


@dataclass(frozen=True)
class AssistantTurn:
    """One training example: the prompt as the model sees it and the output it should write."""

    prompt: list[dict[str, str]]
    completion: str
    profile: list[str]
    revealed: list[Trait]


def recall_reply(stored: Sequence[str], rng: random.Random) -> str:
    """ "What do you remember about me?" answered from the stored profile, nothing else."""
    if not stored:
        return rng.choice(NOTHING_KEPT)
    said = [second_person(t) for t in stored]
    facts = said[0] if len(said) == 1 else f"{', '.join(said[:-1])} and {said[-1]}"
    return rng.choice(RECALLED).format(facts=facts)


def teacher_reply(
    events: set[str],
    new: Sequence[Trait],
    before: Sequence[str],
    known_kinds: set[str],
    asked: set[str],
    rng: random.Random,
    hidden_kinds: set[str],
    first: bool,
    answer: str | None,
) -> tuple[str, str | None]:
    """The teacher's reply to one user message: a memory command is answered from the profile,
    a forget or don't-store request is acknowledged, a request is answered; then, as
    `template_reply`, the latest fact is picked up and sometimes a question asked."""
    if "forget_all" in events:
        return rng.choice(CLEARED), None
    if "recall" in events:
        return recall_reply(before, rng), None
    ask = answer is None or rng.random() < ASK_AFTER_ANSWER
    if events & {"forget", "private"}:
        heard = rng.choice(FORGOTTEN if "forget" in events else NOT_KEPT)
        rest = f" {answer}" if answer else ""
        if new:
            rest = f" {rng.choice(ACKNOWLEDGE).format(clause=second_person(new[-1].text))}{rest}"
        return heard + rest, None
    return template_reply(new, known_kinds, asked, rng, hidden_kinds, first, answer, ask)


def carried_profile(profile: Profile, rng: random.Random, share: float) -> list[Trait]:
    """What an earlier conversation left stored: with probability `share`, some of the user's
    traits (never all), else nothing."""
    if not profile.traits or rng.random() >= share:
        return []
    count = rng.randint(1, max(1, len(profile.traits) // 2))
    return rng.sample(profile.traits, count)


def simulate_dialogue(
    profile: Profile,
    user: UserSimulator,
    seed: int,
    max_turns: int,
    version: int = 2,
    carried_share: float = 0.0,
    target_wording: str = "spoken",
) -> Iterator[AssistantTurn]:
    """Up to `max_turns` assistant turns of one conversation with `user` playing `profile`.

    With probability `carried_share` the conversation starts from a profile stored earlier (some
    of the user's traits): the teacher carries it forward and adds only what is new. Under
    contract v2 each target block lists the turn's change; under v1 the whole profile. With
    `target_wording="spoken"` a trait the user stated in a plain first-person sentence is
    stored in the user's own words ("I'm allergic to peanuts." -> "is allergic to peanuts"),
    which a model can learn to do for facts no catalogue holds; otherwise in the catalogue's.
    """
    if target_wording not in ("spoken", "catalogue"):
        raise ValueError(f"target_wording must be 'spoken' or 'catalogue', not {target_wording!r}")
    rng = random.Random(f"{profile.id}:{seed}")
    user.start(profile, seed)
    history: list[Message] = []
    carried = carried_profile(profile, rng, carried_share)
    wording: dict[Trait, str] = {t: t.text for t in carried}
    stored: list[Trait] = list(carried)
    seen: list[Trait] = list(carried)
    asked: set[str] = set()
    spoken = getattr(user, "spoken", None) if target_wording == "spoken" else None
    user_events = getattr(user, "events", None)
    for index in range(max_turns):
        history.append({"role": "user", "content": user.reply(history)})
        events = {name for name, _ in user_events()} if user_events else set()
        revealed = user.revealed()
        new = [t for t in revealed if t not in seen]
        seen.extend(new)
        true = user.true_profile().traits
        hidden = {t.kind for t in true}
        known = {t.kind for t in revealed} | {t.kind for t in carried}
        before = [wording[t] for t in stored]
        answer = _answer(history[-1]["content"], rng)
        reply, kind = teacher_reply(
            events, new, before, known, asked, rng, hidden, index == 0, answer
        )
        if kind:
            asked.add(kind)
        added = [t for t in revealed if t not in stored]
        for trait in added:
            said = spoken(trait) if spoken and trait.kind != PEOPLE else None
            wording[trait] = (third_person(said) if said else None) or trait.text
        kept = [] if "forget_all" in events else [t for t in stored if t in true]
        change = ProfileChange(
            add=tuple(wording[t] for t in added),
            remove=tuple(wording[t] for t in stored if t not in kept),
        )
        after = kept + added
        texts = [wording[t] for t in after]
        block = render_change(change) if version == 2 else texts
        shown = before if (before or version == 2 or index) else None
        yield AssistantTurn(
            build_messages(history, shown, version), render_output(block, reply), texts, revealed
        )
        history.append({"role": "assistant", "content": reply})
        stored = after


def _answer(request: str, rng: random.Random) -> str | None:
    said = request.lower()
    for opener, answers in ANSWERS.items():
        # The request may open the message, close it, or follow the facts ("..., so how do I").
        if GREETED.sub("", opener.lower()).rstrip("?.") in said:
            return rng.choice(answers)
    return None


def sft_examples(
    profiles: Sequence[Profile],
    make_user: Callable[[], UserSimulator],
    max_turns: int,
    seed: int = 0,
    version: int = 2,
    carried_share: float = 0.0,
    target_wording: str = "spoken",
) -> list[dict[str, Any]]:
    """TRL conversational prompt/completion rows, one per assistant turn of every conversation."""
    rows = []
    for index, profile in enumerate(profiles):
        turns = simulate_dialogue(
            profile, make_user(), seed + index, max_turns, version, carried_share, target_wording
        )
        for turn in turns:
            completion = [{"role": "assistant", "content": turn.completion}]
            rows.append({"prompt": turn.prompt, "completion": completion})
    return rows


def training_profiles(
    path: str | None, count: int, seed: int, split: str = "train"
) -> list[Profile]:
    """One split of the users read from `path` or `count` generated: "train", "validation" or
    "test", as `split_profiles` draws them with the same seed, so evaluation meets unseen users."""
    from training.data import generate_profiles, load_profiles, split_profiles

    profiles = load_profiles(path) if path else generate_profiles(count, seed)
    parts = dict(
        zip(("train", "validation", "test"), split_profiles(profiles, seed=seed), strict=True)
    )
    return parts[split]
