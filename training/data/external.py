"""Profiles from a JSONL file: richer data than the generator, by path.

Each line is one of
- a JSON string: a third-person persona paragraph (ALOE's format), split into atomic traits;
- a JSON list of trait strings;
- a JSON object with a "traits" list (strings, or {"kind", "value", "text"} objects as
  training.data.profiles.write_profiles writes them) and an optional "id".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.rlpa import normalize_traits
from training.data.persona import split_persona
from training.data.profiles import OTHER, Profile, Trait


def _other(texts: list[str]) -> list[Trait]:
    return [Trait(OTHER, text, text) for text in normalize_traits(texts)]


def _trait_list(items: list[Any], where: str) -> list[Trait]:
    if all(isinstance(item, str) for item in items):
        return _other(items)
    if all(isinstance(item, dict) for item in items):
        try:
            return [Trait(str(t["kind"]), str(t["value"]), str(t["text"])) for t in items]
        except KeyError as error:
            raise ValueError(f"{where}: a trait object lacks {error}") from None
    raise ValueError(f"{where}: traits must be all strings or all objects")


def parse_record(data: Any, default_id: str, where: str = "record") -> Profile:
    """One decoded JSONL line as a profile; `where` names it in error messages."""
    if isinstance(data, str):
        return Profile(default_id, _other(split_persona(data)))
    if isinstance(data, list):
        return Profile(default_id, _trait_list(data, where))
    if isinstance(data, dict) and isinstance(data.get("traits"), list):
        return Profile(str(data.get("id", default_id)), _trait_list(data["traits"], where))
    raise ValueError(
        f"{where}: expected a persona string, a list of traits or an object with a 'traits' list"
    )


def _values(line: str, where: str) -> list[Any]:
    """Every JSON value on the line: some published files lost a newline between two records
    (ALOE's profile.jsonl line 6 holds two persona strings), and both are wanted."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    text = line.strip()
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def load_profiles(path: str | Path, id_prefix: str | None = None) -> list[Profile]:
    """Every profile in the file, in order. Blank lines and profiles with no trait are skipped:
    an empty gold profile would reward a model for inferring nothing."""
    path = Path(path)
    prefix = id_prefix if id_prefix is not None else path.stem
    profiles: list[Profile] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = f"{path}:{number}"
            for index, data in enumerate(_values(line, where)):
                default_id = f"{prefix}-{number}" + (f".{index}" if index else "")
                profile = parse_record(data, default_id, where)
                if profile.traits:
                    profiles.append(profile)
    return profiles
