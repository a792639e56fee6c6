"""Synthetic user profiles drawn from the project's own catalogue: the default training data.

A profile is a list of atomic traits (one fact each). Generation is deterministic per seed and
never combines values the catalogue lists as contradictory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.data.catalogue import KINDS, conflicts, key

OTHER = "other"
"""The kind of traits that come from outside the catalogue (persona paragraphs, trait lists)."""


@dataclass(frozen=True)
class Trait:
    kind: str
    value: str
    text: str
    """Third-person, subject left out: "works as a nurse". This is what a model should infer."""


@dataclass
class Profile:
    id: str
    traits: list[Trait] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [trait.text for trait in self.traits]

    def facts(self) -> tuple[tuple[str, str], ...]:
        """What the profile says, ignoring wording and order: two profiles with the same facts
        are the same user, whatever phrasing each trait was given."""
        return tuple(sorted((trait.kind, trait.value) for trait in self.traits))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(str(data["id"]), [Trait(**trait) for trait in data["traits"]])


def as_trait(item: Trait | Mapping[str, Any] | str) -> Trait:
    """A trait from whatever a dataset row holds: a Trait, its dict form, or bare text."""
    if isinstance(item, Trait):
        return item
    if isinstance(item, str):
        return Trait(OTHER, item, item)
    return Trait(str(item["kind"]), str(item["value"]), str(item["text"]))


def _draw(rng: random.Random, size: int) -> list[Trait]:
    kinds = list(KINDS.values())
    rng.shuffle(kinds)
    chosen: set[str] = set()
    traits: list[Trait] = []
    for kind in kinds:
        wanted = rng.randint(1, kind.max_values)
        for value in rng.sample(kind.values, len(kind.values)):
            if wanted == 0 or len(traits) == size:
                break
            candidate = key(kind.name, value.name)
            if conflicts(candidate, chosen):
                continue
            chosen.add(candidate)
            traits.append(Trait(kind.name, value.name, rng.choice(value.third)))
            wanted -= 1
        if len(traits) == size:
            break
    return traits


def generate_profiles(
    n: int, seed: int, traits_per_profile: tuple[int, int] = (6, 10)
) -> list[Profile]:
    """`n` profiles with distinct facts, each holding between the two bounds of traits."""
    low, high = traits_per_profile
    if not 1 <= low <= high <= len(KINDS):
        raise ValueError(f"traits_per_profile must lie within 1..{len(KINDS)}, got {low}..{high}")
    rng = random.Random(seed)
    seen: set[tuple[tuple[str, str], ...]] = set()
    profiles: list[Profile] = []
    attempts = 0
    while len(profiles) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct profiles of {low}..{high} traits")
        profile = Profile(f"gen-{seed}-{len(profiles):06d}", _draw(rng, rng.randint(low, high)))
        if profile.facts() not in seen:
            seen.add(profile.facts())
            profiles.append(profile)
    return profiles


def split_profiles(
    profiles: Sequence[Profile],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[list[Profile], list[Profile], list[Profile]]:
    """Train, validation and test sets that share no user.

    Profiles with the same facts count as one user, so only the first of them is kept: otherwise
    a duplicate could land on both sides and leak the test set into training.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    unique: dict[tuple[tuple[str, str], ...], Profile] = {}
    for profile in profiles:
        unique.setdefault(profile.facts(), profile)
    pool = list(unique.values())
    random.Random(seed).shuffle(pool)
    n_train = round(fractions[0] * len(pool))
    n_val = min(round(fractions[1] * len(pool)), len(pool) - n_train)
    return pool[:n_train], pool[n_train : n_train + n_val], pool[n_train + n_val :]


def write_profiles(path: str | Path, profiles: Iterable[Profile]) -> None:
    """One JSON object per line, readable back with training.data.external.load_profiles."""
    with Path(path).open("w", encoding="utf-8") as out:
        for profile in profiles:
            out.write(json.dumps(profile.to_dict(), ensure_ascii=False) + "\n")
