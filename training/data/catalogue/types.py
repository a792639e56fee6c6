"""The shape of the attribute catalogue and two small builders that keep its text compact.

In the builders, alternatives are separated by "|" so that one line holds every phrasing of a value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Value:
    name: str
    third: tuple[str, ...]
    """Third-person trait texts without a subject: "works as a nurse"."""
    first: tuple[str, ...]
    """One-sentence first-person reveals the simulated user may say: "I'm a nurse."."""


@dataclass(frozen=True)
class Kind:
    name: str
    keywords: frozenset[str]
    """Topic words that make this kind relevant when the assistant uses them."""
    values: tuple[Value, ...]
    max_values: int = 1
    """How many values one profile may hold (hobbies: a few; marital status: one)."""

    def value(self, name: str) -> Value:
        for value in self.values:
            if value.name == name:
                return value
        raise KeyError(f"{self.name} has no value {name!r}")


def _alternatives(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|") if part.strip())


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def same(names: str) -> dict[str, str]:
    """Fills that are their own value name: same("Seattle|Portland")."""
    return {name: name for name in _alternatives(names)}


def V(third: str, first: str) -> tuple[str, str]:  # capitalised: reads as a table row
    """An explicitly phrased value: third-person and first-person alternatives."""
    return third, first


def explicit(
    name: str, keywords: str, values: dict[str, tuple[str, str]], max_values: int = 1
) -> Kind:
    built = tuple(
        Value(value, _alternatives(third), _alternatives(first))
        for value, (third, first) in values.items()
    )
    return Kind(name, frozenset(keywords.split()), built, max_values)


def templated(
    name: str,
    keywords: str,
    third: str,
    first: str,
    fills: dict[str, str],
    extra: dict[str, tuple[str, str]] | None = None,
    max_values: int = 1,
) -> Kind:
    """Values whose phrasings share templates; `{x}` is the fill, `{X}` the fill capitalised.

    A fill may carry value-specific first-person sentences after a "|": "a nurse|I'm on a ward."
    """
    values: list[Value] = []
    for value, fill_spec in fills.items():
        fill, *own = _alternatives(fill_spec)

        def render(template: str, fill: str = fill) -> str:
            return template.replace("{x}", fill).replace("{X}", _capitalised(fill))

        values.append(
            Value(
                value,
                tuple(render(t) for t in _alternatives(third)),
                tuple(render(t) for t in _alternatives(first)) + tuple(own),
            )
        )
    for value, (third_alts, first_alts) in (extra or {}).items():
        values.append(Value(value, _alternatives(third_alts), _alternatives(first_alts)))
    return Kind(name, frozenset(keywords.split()), tuple(values), max_values)
