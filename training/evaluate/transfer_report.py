"""The markdown of a transfer report (transfer.json as `transfer_protocol` writes it): the
yardsticks first, the lenient keyword metrics last, and each model's per-user difference to the
notebooks (`echo`, `echo1`: baselines.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from training.evaluate.transfer import CONVERSATION, HEADLINE, LENIENT, LOWER_IS_BETTER, UPDATES

HEADINGS = {
    "f1_one_to_one": "F1 (one-to-one)",
    "precision_one_to_one": "precision (one-to-one)",
    "recall_one_to_one": "recall (one-to-one)",
    "junk_rate": "junk rate",
    "tokens_per_fact": "profile tokens per covered fact",
    "update_accuracy": "update accuracy",
    "forget_compliance": "forget compliance",
    "stale_rate": "stale traits",
    "contradiction_rate": "contradiction rate (final profiles)",
    "attribution": "third parties attributed",
    "misattribution_rate": "misattributed traits",
    "retention": "retention",
    "turn1_recall": "turn-1 recall",
    "requests_answered": "requests answered",
    "response": "response (eval judge)",
    "run_on_rate": "run-on traits",
    "f1": "lenient F1 (keyword)",
    "precision": "lenient precision",
    "recall": "lenient recall",
}
TABLES = (
    ("One trait, one fact (headline)", HEADLINE),
    ("Updates, forgetting, attribution", UPDATES),
    ("Conversation and replies", CONVERSATION),
    ("Lenient keyword metrics (as on the card; a notebook passes them)", LENIENT),
)
COUNTED = {"misattribution_rate": "misattributed"}
"""Cells that also show the pooled count (brief: a count of misattributed traits)."""


def heading(name: str) -> str:
    return HEADINGS[name] + (" \u2193" if name in LOWER_IS_BETTER else "")


def cell(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    if estimate is None:
        return "n/a"
    return (
        f"{estimate['mean']:.{digits}f} [{estimate['low']:.{digits}f}, "
        f"{estimate['high']:.{digits}f}] (n={estimate['users']})"
    )


def _table(systems: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    lines = [
        "| system | " + " | ".join(heading(name) for name in names) + " |",
        "| --- " * (len(names) + 1) + "|",
    ]
    for system in systems:
        cells = []
        for name in names:
            text = cell(system["metrics"][name], 2 if name == "tokens_per_fact" else 3)
            if name in COUNTED:
                text += f"; {system['counts'][COUNTED[name]]} in all"
            cells.append(text)
        lines.append("| " + " | ".join([system["name"], *cells]) + " |")
    return lines


def _against(against: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    if not against:
        return ["No model system was run: only the notebooks."]
    pairs = [(model, notebook) for model, by in against.items() for notebook in by]
    lines = [
        "Per-user difference, model minus notebook, on the same users: mean [paired bootstrap "
        "95% interval] (n = users). \u2193: lower is better, so a model ahead of the notebook "
        "has a negative difference there.",
        "",
        "| metric | " + " | ".join(f"{m} \u2212 {n}" for m, n in pairs) + " |",
        "| --- " * (len(pairs) + 1) + "|",
    ]
    for name in next(iter(against[pairs[0][0]].values())):
        cells = [cell(against[m][n][name], 2 if name == "tokens_per_fact" else 3) for m, n in pairs]
        lines.append("| " + " | ".join([heading(name), *cells]) + " |")
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    """The report's tables, one per group of metrics, then "Against the notebooks"."""
    lines = [
        f"# {results.get('title', 'Transfer set')}",
        "",
        f"Transfer set `{results['transfer_set']['path']}` ({results['transfer_set']['users']} "
        "users). Each cell: mean [bootstrap 95% interval] (n = users it applies to). `echo` "
        "stores every user message verbatim and `echo1` each message's first statement, with no "
        "model (training/evaluate/baselines.py); they do not reply. \u2193: lower is better. "
        "Definitions: training/evaluate/transfer.py and yardsticks.py.",
    ]
    for title, names in TABLES:
        lines += ["", f"## {title}", "", *_table(results["systems"], names)]
    lines += ["", "## Against the notebooks", "", *_against(results.get("against_notebooks", {}))]
    return "\n".join(lines) + "\n"
