"""The model card's section of the model's README.md, rendered from eval.json alone, so that the
README's numbers are eval.json's: `check_card` renders it again and compares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.evaluate.card_numbers import BASE_METRICS, METRICS
from training.evaluate.transfer_report import cell, heading

BEGIN = (
    "<!-- eval card: written by training/evaluate/card.py from eval.json; "
    "re-run the card rather than edit it -->"
)
END = "<!-- end of eval card -->"
HEADING = "## Eval card"
SETTING_WORDS = {
    "greedy": "greedy decoding",
    "served": "served sampling (the gateway's default for the embedded model)",
}


def _digits(metric: str) -> int:
    return 2 if metric == "tokens_per_fact" else 3


def _set_label(name: str, entry: Mapping[str, Any]) -> str:
    if entry["role"] == "held-out":
        return f"{name} (held out, read count {entry['read_count']})"
    return f"{name} (dev set)"


def _sets(card: Mapping[str, Any]) -> list[str]:
    lines = ["| eval set | role | sha256 | " + " | ".join(card["settings"]) + " |"]
    lines.append("| --- " * (3 + len(card["settings"])) + "|")
    for name, entry in card["eval_sets"].items():
        role = entry["role"] + (
            f", read count {entry['read_count']}" if "read_count" in entry else ""
        )
        runs = card["results"].get(name)
        cells = [
            "not on this card"
            if runs is None
            else f"{runs[s]['users']} users"
            if "per_user" in runs[s]
            else f"not measured: {runs[s]['not_measured']}"
            for s in card["settings"]
        ]
        lines.append(f"| `{entry['path']}` | {role} | `{entry['sha256']}` | {' | '.join(cells)} |")
    return lines


def _hashes(card: Mapping[str, Any]) -> list[str]:
    lines = ["| what | file | sha256 |", "| --- | --- | --- |"]
    for group, files in card["hashes"].items():
        lines += [f"| {group} | `{name}` | `{digest}` |" for name, digest in files.items()]
    return lines


def _result(card: Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    model, base = card["system"], card["base"]
    notebooks = list(result["against"])
    columns = [model, *notebooks, *(f"{model} \u2212 {n}" for n in notebooks)]
    sampling = ", ".join(f"{k} {v}" for k, v in result["sampling"].items())
    lines = [
        f"Sent: {sampling}. Per-user rows: `{result['per_user']}`.",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "| --- " * (len(columns) + 1) + "|",
    ]
    for metric in METRICS:
        values = [result["metrics"][name][metric] for name in (model, *notebooks)]
        values += [result["against"][n][metric] for n in notebooks]
        cells = [cell(v, _digits(metric)) for v in values]
        lines.append(f"| {heading(metric)} | " + " | ".join(cells) + " |")
    found = result["base"]
    lines.append("")
    if "not_measured" in found:
        lines.append(
            f"Response score against the bare base: not measured ({found['not_measured']})."
        )
    for metric in BASE_METRICS if "not_measured" not in found else ():
        lines.append(
            f"{heading(metric)} against the bare base `{base}` on the same user turns: "
            f"{base} {cell(found[metric])}; {model} \u2212 {base} "
            f"{cell(found['difference'][metric])}."
        )
    return lines


def markdown(card: Mapping[str, Any]) -> str:
    """The card's section: what was measured on what, then one table per set and setting."""
    model = card["system"]
    lines = [
        BEGIN,
        HEADING,
        "",
        f"`{model}` on the hand-written eval sets (`training/eval_data`), beside the two "
        "notebooks that need no model on the same users: `echo` stores every user message "
        "verbatim, `echo1` each message's first statement (training/evaluate/baselines.py); they "
        "do not reply, so requests answered and the response score do not apply to them. Each "
        "cell: mean [bootstrap 95% interval] (n = users it applies to); the differences are "
        f"`{model}`'s per-user difference to each notebook, with a paired bootstrap interval. "
        "\u2193: lower is better. One-to-one F1 is the headline; the lenient keyword metrics, "
        "which a notebook passes, come last. Definitions: training/evaluate/transfer.py and "
        "yardsticks.py. Every number is in `eval.json` and is computed from the per-user rows in "
        f"`eval/`. Built {card['created_at']}.",
        "",
        *_sets(card),
        "",
        "What the numbers depend on (`check_card` fails when one changes and the card is not "
        "re-run):",
        "",
        *_hashes(card),
    ]
    for set_name, by_setting in card["results"].items():
        label = _set_label(set_name, card["eval_sets"][set_name])
        for setting, result in by_setting.items():
            lines += ["", f"### {label}: {SETTING_WORDS[setting]}", ""]
            if "not_measured" in result:
                lines.append(f"Not measured: {result['not_measured']}")
            else:
                lines += _result(card, result)
    return "\n".join([*lines, END])


def section(readme: str) -> str | None:
    """The card's section of a README (markers included), or None without one."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        return None
    return readme[start : end + len(END)]


def with_section(readme: str, text: str) -> str:
    """`readme` with its card section replaced by `text`: the marked one, or else the section
    under HEADING (up to the next `## `, as cards before the markers had it), or else appended."""
    if (old := section(readme)) is not None:
        return readme.replace(old, text)
    start = readme.find(f"\n{HEADING}\n")
    if start < 0:
        return readme.rstrip("\n") + "\n\n" + text + "\n"
    end = readme.find("\n## ", start + 1)
    return readme[: start + 1] + text + "\n" + ("" if end < 0 else readme[end:])
