"""Facts about other people (and pets) that a user mentions: "My sister Ana is vegan." A memory
stores them as theirs ("has a sister, Ana, who is vegan"), never as the user's own.

They are drawn here rather than from the profile catalogue: a user's sister is not a trait of the
user, and the same relation can come up with any of a few facts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PEOPLE = "people"
"""The kind of a trait that is about someone else (see `training.data.profiles.Trait`)."""

_ADULT = (
    "is vegan", "is vegetarian", "is allergic to shellfish", "is allergic to nuts",
    "is gluten intolerant", "hates mushrooms", "can't stand spicy food", "works as a nurse",
    "works night shifts", "is a chef", "teaches maths", "is training for a marathon",
    "loves jazz", "plays the cello", "lives in Berlin", "lives in Leeds", "just retired",
    "doesn't drink alcohol", "is afraid of flying", "has a bad back", "is learning Japanese",
    "supports Benfica", "is pregnant", "uses a wheelchair", "gets seasick",
)  # fmt: skip
_CHILD = (
    "is 12", "is six", "is starting school in September", "loves dinosaurs",
    "is allergic to sesame", "hates mushrooms", "is a picky eater", "plays football on Saturdays",
    "is scared of the dark", "is learning the violin", "has asthma", "is obsessed with trains",
    "can't swim yet", "is lactose intolerant", "is in a wheelchair",
)  # fmt: skip
_PET = (
    "is scared of fireworks", "is on a special diet", "is 14 and a bit slow now",
    "hates the car", "is really anxious around other dogs", "needs a walk twice a day",
    "is diabetic", "sheds everywhere",
)  # fmt: skip
_RELATIONS = {
    "adult": ("sister", "brother", "husband", "wife", "partner", "boyfriend", "girlfriend",
              "mum", "dad", "best friend", "flatmate", "boss", "colleague", "grandma"),
    "child": ("son", "daughter", "oldest", "youngest", "nephew", "niece"),
    "pet": ("dog", "cat"),
}  # fmt: skip
_NAMES = {
    "m": ("Tomás", "Leo", "Jonas", "Ben", "Marco", "Kofi", "Dev", "Finn"),
    "f": ("Ana", "Priya", "Maya", "Aisha", "Chloe", "Ines", "Rosa", "Zara", "Elena"),
    "x": ("Sam", "Alex", "Yuki", "Olu", "Robin", "Kim", "Jamie", "Noor"),
}
_GENDER = {
    "brother": "m", "husband": "m", "boyfriend": "m", "dad": "m", "son": "m", "nephew": "m",
    "oldest": "m", "sister": "f", "wife": "f", "girlfriend": "f", "mum": "f", "grandma": "f",
    "daughter": "f", "niece": "f", "youngest": "f",
}  # fmt: skip
_PET_NAMES = ("Max", "Biscuit", "Luna", "Pepper", "Rex", "Mochi", "Bruno", "Nala")
_PREDICATES = {"adult": _ADULT, "child": _CHILD, "pet": _PET}
_NOUN = {"oldest": "son", "youngest": "daughter"}
"""What a relation said as a superlative ("my oldest") is stored as."""


@dataclass(frozen=True)
class OtherFact:
    relation: str
    name: str | None
    predicate: str

    @property
    def stored(self) -> str:
        """As a memory keeps it: the user has that person, who has that trait."""
        noun = _NOUN.get(self.relation, self.relation)
        article = "an" if noun[0] in "aeiou" else "a"
        named = f", {self.name}," if self.name else ""
        return f"has {article} {noun}{named} who {self.predicate}"

    @property
    def key(self) -> str:
        return f"{self.relation}:{self.predicate}"


def draw(rng: random.Random) -> OtherFact:
    group = rng.choice(("adult", "adult", "child", "pet"))
    relation = rng.choice(_RELATIONS[group])
    names = _PET_NAMES if group == "pet" else _NAMES[_GENDER.get(relation, "x")]
    name = rng.choice(names) if rng.random() < 0.6 else None
    return OtherFact(relation, name, rng.choice(_PREDICATES[group]))


def plain(fact: OtherFact) -> str:
    """The plainest sentence for it: "My sister Ana is vegan."."""
    named = f" {fact.name}" if fact.name else ""
    return f"My {fact.relation}{named} {fact.predicate}."


def say(fact: OtherFact, rng: random.Random) -> str:
    """The sentence a user says it with, in a few of the ways people do."""
    if fact.name is None:
        forms = [f"My {fact.relation} {fact.predicate}.", f"Oh, and my {fact.relation} "
                 f"{fact.predicate}."]  # fmt: skip
    else:
        forms = [
            f"My {fact.relation} {fact.name} {fact.predicate}.",
            f"My {fact.relation}, {fact.name}, {fact.predicate}.",
            f"{fact.name}, my {fact.relation}, {fact.predicate}.",
        ]
    if fact.relation not in _RELATIONS["pet"]:
        forms.append(f"My {fact.relation} {fact.predicate}, just so you know.")
    return rng.choice(forms)
