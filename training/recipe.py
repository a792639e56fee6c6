"""The one recipe loader: a flat YAML mapping of config fields, from a file or by the name of
one shipped in training/recipes, and `load_config`, which builds any stage's config from it and
`--set key=value` overrides. Every stage (`train sft|rl`, `eval`, `export`) loads its config
here. Nothing heavy is imported, so looking a recipe up never pulls in TRL or torch."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

RECIPES = Path(__file__).parent / "recipes"
Config = TypeVar("Config")


def recipe_path(name: str | Path) -> Path:
    """A recipe file, or the name of one in training/recipes ("sft_cpu")."""
    path = Path(name)
    if path.exists():
        return path
    shipped = RECIPES / f"{name}.yaml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
    raise FileNotFoundError(f"no recipe {str(name)!r}: not a file, nor one of {known}")


def read_recipe(name: str | Path) -> dict[str, Any]:
    """The recipe's fields; an empty file is an empty recipe."""
    import yaml

    loaded = yaml.safe_load(recipe_path(name).read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"recipe {name} must be a mapping of field names to values")
    return loaded


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings, values read as YAML ("3" is an int, "[a, b]" a list, "null" None)."""
    import yaml

    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {pair!r} is not key=value")
        values[key.strip()] = yaml.safe_load(raw)
    return values


def load_config(
    cls: type[Config], recipe: str | Path | None, overrides: Mapping[str, Any] = {}
) -> Config:
    """`cls` (a dataclass) built from a recipe's keys, then `overrides`. Unknown keys are refused
    by name, and so is a value outside a field's `Literal` choices: a misspelt setting must not
    fall back to its default."""
    values: dict[str, Any] = read_recipe(recipe) if recipe is not None else {}
    values.update(overrides)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config key {key!r} for {cls.__name__}{hint}")
    return cls(
        **{k: _checked(k, _coerce(v, hints.get(k)), hints.get(k)) for k, v in values.items()}
    )


def _options(hint: Any) -> tuple[Any, ...]:
    """The types a field accepts: the members of a union, or the hint itself."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any) -> Any:
    """YAML reads 1e-4 as a string (it wants 1.0e-4); numbers are made numbers by field type."""
    if not isinstance(value, str):
        return value
    options = _options(hint)
    for kind in (int, float):
        if kind in options and str not in options:
            try:
                return kind(value)
            except ValueError:
                continue
    return value


def _checked(key: str, value: Any, hint: Any) -> Any:
    """`value`, if the field's type is a `Literal` (or an optional one) that allows it."""
    options = _options(hint)
    choices = [
        c for o in options if typing.get_origin(o) is typing.Literal for c in typing.get_args(o)
    ]
    if not choices or value in choices or (value is None and type(None) in options):
        return value
    raise ValueError(f"{key} must be one of {choices}, not {value!r}")


def recipe_dict(config: Any) -> dict[str, Any]:
    """The config as plain data, for rlpa.json, logs and `--print-config`."""
    data: dict[str, Any] = config.to_dict() if hasattr(config, "to_dict") else {}
    return data or dataclasses.asdict(config)
