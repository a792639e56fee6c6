"""Results of any set of systems, side by side: JSON (everything), Markdown tables, a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.evaluate import metrics
from training.evaluate.protocol import Conversation

FILES = {
    "json": "results.json",
    "card": "summary.json",  # summaries only: small enough for an exported checkpoint's card
    "markdown": "report.md",
    "plot": "report.png",
}


def system_result(name: str, kind: str, conversations: Sequence[Conversation]) -> dict[str, Any]:
    """One system's entry in the results: summary, per-turn means and every conversation."""
    f1 = [[t.profile_f1 for t in c.turns] for c in conversations]
    scores = [[t.response_score for t in c.turns] for c in conversations]
    # Revealed share = |revealed| / |true|: the profile F1 a system could reach by turn k
    # if it inferred exactly what the user had said, no more.
    shares = [
        [len(t.revealed) / max(len(t.true_profile), 1) for t in c.turns] for c in conversations
    ]
    summary = metrics.summarise(f1, scores)
    per_turn = [
        {
            "turn": k + 1,
            "users": len(at_turn),
            "profile_f1": summary["profile_f1"]["by_turn"][k],
            "alignment": summary["alignment"]["by_turn"][k],
            "response_score": sum(at_turn) / len(at_turn),
            "revealed_share": share,
        }
        for k, (at_turn, share) in enumerate(
            zip(metrics.by_turn(scores), metrics.per_turn_means(shares), strict=True)
        )
    ]
    return {
        "name": name,
        "kind": kind,
        "summary": summary,
        "per_turn": per_turn,
        "conversations": [c.to_dict() for c in conversations],
    }


def load_results(path: str | Path) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(Path(path).read_text())
    if not isinstance(results.get("systems"), list):
        raise ValueError(f"{path} is not a results.json written by rlpa eval")
    return results


def merge_results(runs: Sequence[Mapping[str, Any]], title: str | None = None) -> dict[str, Any]:
    """Several results files as one report; a later system of the same name wins."""
    if not runs:
        raise ValueError("nothing to merge")
    systems: dict[str, Any] = {}
    for run in runs:
        systems.update({system["name"]: system for system in run["systems"]})
    merged = {key: value for key, value in runs[-1].items() if key != "systems"}
    merged["title"] = title or merged.get("title", "RLPA evaluation")
    merged["systems"] = list(systems.values())
    return merged


def card(results: Mapping[str, Any]) -> dict[str, Any]:
    """The results without the conversations: what `rlpa export --eval-summary` takes."""
    systems = [{k: v for k, v in s.items() if k != "conversations"} for s in results["systems"]]
    return {**{k: v for k, v in results.items() if k != "systems"}, "systems": systems}


def stage_card(results: Mapping[str, Any]) -> dict[str, Any]:
    """A shipped checkpoint's eval card: each system (stage) by name with its headline numbers,
    plus the settings they were measured under."""
    config = results.get("config", {})
    setting_keys = (
        "users",
        "turns",
        "split",
        "num_profiles",
        "profile_seed",
        "profiles_path",
        "seed",
        "simulator",
        "matcher",
        "judge",
        "change_at_turn",
        "opener_fact_share",
    )
    stages = {}
    for system in results["systems"]:
        s = system["summary"]
        stages[system["name"]] = {
            "profile_f1": s["profile_f1"]["mean"],
            "profile_f1_last_turn": s["profile_f1"]["last"],
            "response_score": s["response_score"],
            "alignment_avg": s["alignment"]["mean"],
            "alignment_n_ir": s["alignment"]["n_ir"],
            "alignment_n_r2": s["alignment"]["n_r2"],
            "profile_f1_by_turn": s["profile_f1"]["by_turn"],
            "intervals": s.get("intervals"),
            "users": s.get("users"),
            "turns": s.get("turns"),
        }
    return {
        "title": results.get("title"),
        "created_at": results.get("created_at"),
        "contract_version": results.get("contract_version"),
        "settings": {key: config[key] for key in setting_keys if key in config},
        "stages": stages,
    }


def write_stage_card(results: Mapping[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stage_card(results), indent=2) + "\n", encoding="utf-8")
    return out


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(results: Mapping[str, Any]) -> str:
    systems = results["systems"]
    lines = [
        f"# {results.get('title', 'RLPA evaluation')}",
        "",
        "Profile F1 is 0..1 (mean over turns / turn 1 / last turn); AVG is the mean of AL(k), "
        "the % of users aligned at turn k; N-IR and N-R² are the slope and R² of a line "
        "through min-max-normalised AL(k) against the turn number (see metrics.py).",
        "",
        "| system | profile F1 (mean / turn 1 / turn R) | AVG | N-IR | N-R² | response score |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for system in systems:
        s = system["summary"]
        f1, al = s["profile_f1"], s["alignment"]
        lines.append(
            f"| {system['name']} | {f1['mean']:.3f} / {f1['first']:.3f} / {f1['last']:.3f} "
            f"| {al['mean']:.1f} | {_num(al['n_ir'], 3)} | {_num(al['n_r2'], 3)} "
            f"| {s['response_score']:.3f} |"
        )
    for key, heading, digits in (("alignment", "AL(k), %", 1), ("profile_f1", "Profile F1", 3)):
        turns = max(len(system["summary"][key]["by_turn"]) for system in systems)
        lines += [
            "",
            f"## {heading} by turn",
            "",
            "| system | " + " | ".join(str(k) for k in range(1, turns + 1)) + " | N-IR | N-R² |",
            "| --- " * (turns + 3) + "|",
        ]
        for system in systems:
            series = system["summary"][key]
            cells = [f"{v:.{digits}f}" for v in series["by_turn"]]
            cells += ["n/a"] * (turns - len(cells))
            trend = [_num(series["n_ir"], 3), _num(series["n_r2"], 3)]
            lines.append("| " + " | ".join([system["name"], *cells, *trend]) + " |")
    return "\n".join(lines) + "\n"


def plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines or in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (f1_axis, al_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for system in results["systems"]:
        for axis, key in ((f1_axis, "profile_f1"), (al_axis, "alignment")):
            series = system["summary"][key]["by_turn"]
            axis.plot(range(1, len(series) + 1), series, marker="o", label=system["name"])
    f1_axis.set(title="Profile F1 by turn", xlabel="turn", ylabel="F1", ylim=(-0.02, 1.02))
    al_axis.set(title="Alignment AL(k) by turn", xlabel="turn", ylabel="% aligned", ylim=(-2, 102))
    for axis in (f1_axis, al_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # turns are whole numbers
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Every file in FILES, in `out_dir`; returns where each went."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in FILES.items()}
    paths["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    paths["card"].write_text(json.dumps(card(results), indent=2, ensure_ascii=False) + "\n")
    paths["markdown"].write_text(markdown(results))
    plot(results, paths["plot"])
    return paths
