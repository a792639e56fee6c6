"""The project's own attribute catalogue: kinds of facts about a person, their values, and how each
value is said in the third person (a profile trait) and in the first person (a simulated user).

Pairs of values that would make a profile contradict itself are listed in EXCLUSIONS; the
generator never puts both in one profile.
"""

from __future__ import annotations

from itertools import product

from training.data.catalogue import life, person, routine, tastes
from training.data.catalogue.types import Kind, Value

KINDS: dict[str, Kind] = {
    kind.name: kind
    for module in (life, routine, tastes, person)
    for kind in vars(module).values()
    if isinstance(kind, Kind)
}


def _pairs(left: str, right: str) -> set[frozenset[str]]:
    """ "kind:a|b" x "kind:c|*" as unordered key pairs; "*" means every value of the kind."""

    def keys(spec: str) -> list[str]:
        kind, values = spec.split(":", 1)
        names = [v.name for v in KINDS[kind].values] if values == "*" else values.split("|")
        for name in names:
            KINDS[kind].value(name)  # a typo here must fail at import, not silently allow
        return [f"{kind}:{name}" for name in names]

    return {frozenset(pair) for pair in product(keys(left), keys(right))}


_ON_SITE_JOBS = (
    "occupation:nurse|electrician|chef|farmer|car mechanic|pharmacist|primary school teacher|"
    "librarian|truck driver"
)

_RULES = [
    ("marital:single|divorced|widowed", "living:with partner"),
    ("marital:married|engaged|long-term partner", "living:alone|with roommates"),
    ("children:a toddler|two school-age kids|a teenage daughter", "living:alone|with roommates"),
    ("children:expecting first child", "marital:single|divorced|widowed"),
    ("age:early twenties", "children:grown-up children|a teenage daughter"),
    ("age:early twenties", "marital:widowed|divorced"),
    ("age:early twenties|thirties|forties", "occupation:retired"),
    ("age:thirties", "children:grown-up children"),
    ("age:over sixty-five", "children:a toddler|expecting first child|two school-age kids"),
    ("age:over sixty-five", "living:with parents"),
    ("occupation:retired", "schedule:*"),
    ("occupation:retired", "commute:*"),
    ("occupation:retired|university student", "goals:get promoted"),
    ("occupation:retired", "goals:change careers"),
    (_ON_SITE_JOBS, "commute:works from home"),
    ("occupation:software developer", "tech:struggles with technology"),
    ("occupation:chef", "goals:learn to cook"),
    ("occupation:lawyer|pharmacist", "education:high school|trade certificate|self-taught"),
    ("diet:vegan|vegetarian|pescatarian", "cuisine:barbecue"),
    ("diet:eats everything", "allergies:peanuts|shellfish|lactose intolerant|coeliac"),
    ("diet:vegan|vegetarian", "allergies:shellfish"),
    ("allergies:cats", "pets:two cats"),
    ("health:bad knee", "sport:running|basketball|football|tennis"),
    ("health:bad knee", "goals:run a marathon"),
    ("health:shoulder surgery", "sport:rock climbing|swimming|tennis|basketball"),
    ("sport:no sport", "goals:run a marathon"),
    ("languages:only English", "location:Lyon|Berlin|Barcelona"),
    ("schedule:night shifts", "chronotype:early riser"),
    ("schedule:early mornings", "chronotype:night owl"),
    ("living:with parents", "goals:buy a house"),
]

EXCLUSIONS: frozenset[frozenset[str]] = frozenset(
    pair for left, right in _RULES for pair in _pairs(left, right)
)


def key(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def conflicts(candidate: str, chosen: set[str]) -> bool:
    return any(frozenset((candidate, other)) in EXCLUSIONS for other in chosen)


def lookup(kind: str, value: str) -> Value | None:
    """The catalogue entry behind a trait, or None for traits from elsewhere (kind "other")."""
    entry = KINDS.get(kind)
    if entry is None:
        return None
    try:
        return entry.value(value)
    except KeyError:
        return None


__all__ = ["EXCLUSIONS", "KINDS", "Kind", "Value", "conflicts", "key", "lookup"]
