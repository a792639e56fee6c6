"""The one recipe loader: a flat YAML mapping of config fields, from a file or by the name of
one shipped in training/recipes. Every stage (`train sft|rl`, `eval`, `export`) reads its recipe
here. Nothing heavy is imported, so looking a recipe up never pulls in TRL or torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECIPES = Path(__file__).parent / "recipes"


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
