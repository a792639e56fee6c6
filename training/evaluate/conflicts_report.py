"""The markdown of a conflict-set report (conflicts.json as `conflicts.run_conflicts` writes it):
one row per gateway and decoding, then each user's violations with the profile on and off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.evaluate.conflicts import DECODINGS

COLUMNS = (
    ("respected_on", "respected, on"),
    ("respected_off", "respected, off"),
    ("respected_difference", "on \u2212 off (paired)"),
    ("concrete_on", "concrete, on"),
    ("concrete_off", "concrete, off"),
    ("served_on", "served, on"),
    ("served_off", "served, off"),
    ("served_difference", "served on \u2212 off (paired)"),
    ("acknowledged_on", "acknowledged, on"),
    ("acknowledged_off", "acknowledged, off"),
    ("answered_on", "answered, on"),
    ("answered_off", "answered, off"),
)


def _cell(estimate: Mapping[str, Any] | None) -> str:
    if estimate is None:
        return "n/a"
    return (
        f"{estimate['mean']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"
        f" (n={estimate['users']})"
    )


def _flips(summary: Mapping[str, Any]) -> tuple[str, str]:
    """Users respected, then served, on one side only; served n/a where no user has
    `answers_any` (and in reports written before it existed)."""
    respected = f"{summary['only_on']} / {summary['only_off']}"
    if summary.get("served_on") is None:
        return respected, "n/a"
    return respected, f"{summary['served_only_on']} / {summary['served_only_off']}"


def _violated(verdict: Mapping[str, Any]) -> str:
    if verdict["violated"]:
        return ", ".join(" + ".join(group) for group in verdict["violated"])
    # The vague reply `served` is there to find. A report written before `concrete` existed
    # has no such key: nothing to add.
    return "respected, no answer" if verdict.get("concrete") is False else "respected"


def markdown(results: Mapping[str, Any]) -> str:
    conflict_set, config = results["conflict_set"], results["config"]
    lines = [
        f"# {results['title']}",
        "",
        f"Conflict set `{conflict_set['path']}` ({conflict_set['users']} users, sha256 "
        f"`{conflict_set['sha256'][:12]}`), model `{config['model']}`. A reply is *respected* "
        "when it holds no violating keyword group (negation guard: "
        "training/eval_data/conflicts.py). On: the stored profile set through the admin API; "
        f"off: {config['personalization_off']}. *Concrete*: names an answer (an `answers_any` "
        "group); *served*: concrete and respected; both n/a for a set without `answers_any`. "
        "Mean [bootstrap 95% interval] over users; acknowledged: over users with "
        "`respects_any`; concrete and served: over users with `answers_any`. Only on / only "
        'off: users respected (served) on one side alone. Below, per user, "respected, no '
        'answer" marks a reply that violates nothing and names no answer either.',
        "",
        "| system | decoding | "
        + " | ".join(h for _, h in COLUMNS)
        + " | only on / only off | served only on / only off |",
        "| --- " * (len(COLUMNS) + 4) + "|",
    ]
    for system in results["systems"]:
        for decoding in DECODINGS:
            if decoding not in system:
                continue
            summary = system[decoding]["summary"]
            # .get: a report written before the served columns existed shows n/a there.
            cells = " | ".join(_cell(summary.get(key)) for key, _ in COLUMNS)
            flips = " | ".join(_flips(summary))
            lines.append(f"| {system['name']} | {decoding} | {cells} | {flips} |")
    for system in results["systems"]:
        for decoding in DECODINGS:
            if decoding not in system:
                continue
            lines += ["", f"## {system['name']}, {decoding}: violations", ""]
            lines += ["| user | on | off |", "| --- | --- | --- |"]
            for row in system[decoding]["users"]:
                on, off = _violated(row["on"]), _violated(row["off"])
                lines.append(f"| {row['id']} | {on} | {off} |")
    return "\n".join(lines) + "\n"
