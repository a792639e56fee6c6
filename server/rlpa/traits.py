"""Profile traits: strict validation for people, tolerant normalisation for models."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

MAX_TRAITS = 64
MAX_TRAIT_CHARS = 200

# Tags are listed here (not in parse.py) so an admin cannot store a trait that would end the
# profile block early when it is rendered back into a prompt.
TAGS = ("<profile>", "</profile>", "<response>", "</response>")
# Tags match case-insensitively in ASCII only; str.lower() would also fold some non-ASCII
# letters and can change a string's length.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Line and paragraph separators are not control characters to Unicode, but str.splitlines()
# breaks on them, so a stored trait holding one would come back as two traits.
_BREAKING = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# A symbol bullet followed by a digit is a sign ("-5 °C"), and "1.5" is a number, not a bullet.
_BULLET = re.compile(r"^(?:[-*•+](?!\d)|\d{1,3}[.)](?=\s|$))\s*")


class TraitError(ValueError):
    """An invalid trait in admin input; `index` is its position, None for the list as a whole."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index

    @property
    def param(self) -> str:
        return "traits" if self.index is None else f"traits[{self.index}]"


def _breaking(text: str) -> str | None:
    for char in text:
        if unicodedata.category(char) in _BREAKING:
            return char
    return None


def validate_traits(traits: Sequence[str]) -> list[str]:
    """Strip and de-duplicate (case-insensitively, first spelling wins), or raise TraitError."""
    if isinstance(traits, str):  # a str is a Sequence[str]; taking it letter by letter is a bug
        raise TraitError("traits must be a list of strings, not one string")
    seen: set[str] = set()
    clean: list[str] = []
    for index, raw in enumerate(traits):
        if not isinstance(raw, str):
            raise TraitError(f"trait {index} is not a string", index)
        trait = raw.strip()
        if not trait:
            raise TraitError(f"trait {index} is empty", index)
        if len(trait) > MAX_TRAIT_CHARS:
            raise TraitError(
                f"trait {index} is {len(trait)} characters long; the limit is {MAX_TRAIT_CHARS}",
                index,
            )
        bad = _breaking(trait)
        if bad is not None:
            raise TraitError(
                f"trait {index} contains the control character U+{ord(bad):04X}", index
            )
        lowered = trait.translate(ASCII_LOWER)
        if any(tag in lowered for tag in TAGS):
            raise TraitError(f"trait {index} contains a profile/response tag", index)
        key = trait.casefold()
        if key not in seen:
            seen.add(key)
            clean.append(trait)
    if len(clean) > MAX_TRAITS:
        raise TraitError(f"{len(clean)} distinct traits given; the limit is {MAX_TRAITS}")
    return clean


def _clean_line(line: str) -> str:
    text = _BULLET.sub("", line.strip(), count=1)
    # Tabs and newlines separate words, so they become spaces; invisible format characters
    # (zero-width spaces and the like) simply go.
    text = "".join(
        " " if cat in ("Cc", "Zl", "Zp") else char
        for char in text
        if (cat := unicodedata.category(char)) not in ("Cf", "Cs")
    )
    return text.strip()[:MAX_TRAIT_CHARS].rstrip()


def normalize_traits(lines: Iterable[str]) -> list[str]:
    """Whatever a model wrote in its profile block, as at most 64 clean, distinct traits."""
    seen: set[str] = set()
    traits: list[str] = []
    for line in lines:
        trait = _clean_line(line)
        key = trait.casefold()
        if trait and key not in seen:
            seen.add(key)
            traits.append(trait)
            if len(traits) == MAX_TRAITS:
                break
    return traits
