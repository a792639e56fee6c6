"""The shipped model's eval card: one JSON from the runs that measured it, with the hashes of
what they were measured on, so a test can tell the card was computed from the committed files.

    python -m training.evaluate.card --out models/smollm2-135m-rlpa/eval.json --shipped sft \\
        --transfer base=runs/transfer/base/transfer.json sft=runs/transfer/sft/transfer.json \\
        --simulated base=runs/card-sim/base/results.json sft=runs/card-sim/sft/results.json \\
        --selection runs/select-v2/sft-gpu/results.json runs/select-v2/sft/results.json \\
        --not-run rl="why"

A stage measured for an earlier card need not be measured again: `--carry models/.../eval.json`
keeps that card's stages (and its selection entries) that this call does not measure anew, as
long as the transfer set and recipes the earlier card hashed still have the same hash, which is
checked. The output grammar (server/rlpa/grammar.py) is hashed too, and every stage and selection
entry records the grammar it was measured under (`null`: under the grammar of a card that did
not record it); a carried entry keeps its own, and the tables mark entries measured under
another grammar than the one served now.

Per stage it keeps the transfer-set metrics (each a mean with its bootstrap 95% interval) and
the simulated-user summary (profile F1 and the eval-only response score, with intervals); the
selection block is what chose the shipped stage, on validation users only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.rlpa import grammar
from training.eval_data import TRANSFER_V1
from training.evaluate.transfer import HEADINGS
from training.recipe import recipe_path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("sft_cpu", "sft_natural_cpu", "rl_cpu", "transfer", "card_v2", "select_v2")
"""The recipes the shipped card depends on: training (two SFT passes, RL), and the three evals."""


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(recipes: Sequence[str] = RECIPES, transfer_set: Path = TRANSFER_V1) -> dict[str, Any]:
    """sha256 of the transfer set and of each recipe file, keyed by its repository path."""

    def key(path: Path) -> str:
        return str(path.resolve().relative_to(ROOT))

    return {
        "transfer_set": {key(transfer_set): sha256(transfer_set)},
        "recipes": {key(p): sha256(p) for p in (recipe_path(r) for r in recipes)},
        "grammar": {key(GRAMMAR): sha256(GRAMMAR)},
    }


GRAMMAR = Path(grammar.__file__).resolve()
"""The output grammar the gateway decodes with: a stage measured under another is not comparable
row for row, so each entry records it."""


def grammar_hash(card_hashes: Mapping[str, Any]) -> str | None:
    """The grammar's sha256 among a card's hashes; None for a card that did not record it."""
    return next(iter(card_hashes.get("grammar", {}).values()), None)


def _simulated(system: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    summary = system["summary"]
    return {
        "users": summary["users"],
        "turns": summary["turns"],
        "profile_f1": summary["intervals"]["profile_f1"],
        "profile_f1_last_turn": summary["intervals"]["profile_f1_last_turn"],
        "response_score": summary["intervals"]["response_score"],
        "profile_f1_by_turn": summary["profile_f1"]["by_turn"],
        "settings": {
            k: config.get(k)
            for k in (
                "num_profiles",
                "profile_seed",
                "split",
                "users",
                "turns",
                "opener_fact_share",
                "matcher",
                "judge",
            )
        },
    }


def _only_system(path: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The system `name` of a results file; `PATH@SYSTEM` names the system when the stage is
    called otherwise in the card."""
    path, _, system_name = path.partition("@")
    name = system_name or name
    results = json.loads(Path(path).read_text())
    systems = {s["name"]: s for s in results["systems"]}
    if name not in systems:
        raise ValueError(f"{path} has no system {name!r} (has {sorted(systems)})")
    return systems[name], results


def carried(previous: Mapping[str, Any]) -> dict[str, Any]:
    """`previous` (an earlier card), once every file it hashed but the grammar is checked
    unchanged; each entry that does not say which grammar it was measured under gets the earlier
    card's (None where that card did not record one)."""
    for group, files in previous["hashes"].items():
        if group == "grammar":
            continue
        for path, digest in files.items():
            if not (ROOT / path).is_file() or sha256(ROOT / path) != digest:
                raise ValueError(f"{path} changed since the carried card was measured")
    earlier = grammar_hash(previous["hashes"])
    return {
        "stages": {
            name: {"grammar": earlier, **entry} for name, entry in previous["stages"].items()
        },
        "selection": [{"grammar": earlier, **entry} for entry in previous["selection"]],
    }


def build_card(
    shipped: str,
    transfer: Mapping[str, str],
    simulated: Mapping[str, str],
    selection: Sequence[str] = (),
    not_run: Mapping[str, str] | None = None,
    title: str = "smollm2-135m-rlpa (contract v2)",
    carry: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    card_hashes = hashes()
    served = grammar_hash(card_hashes)
    previous = carried(carry) if carry else {"stages": {}, "selection": []}
    stages: dict[str, Any] = {}
    transfer_sha = None
    for stage in [*transfer, *(s for s in simulated if s not in transfer)]:
        entry: dict[str, Any] = {"grammar": served}
        if stage in transfer:
            system, results = _only_system(transfer[stage], stage)
            entry["transfer"] = system["metrics"]
            sha = results["transfer_set"]["sha256"]
            if transfer_sha not in (None, sha):
                raise ValueError("the transfer runs were made on different transfer sets")
            transfer_sha = sha
        if stage in simulated:
            system, results = _only_system(simulated[stage], stage)
            entry["simulated"] = _simulated(system, results.get("config", {}))
        stages[stage] = entry
    for stage, reason in (not_run or {}).items():
        stages[stage] = {"not_run": reason}
    for stage, entry in previous["stages"].items():
        if stage not in stages and "not_run" not in entry:
            stages[stage] = entry
    stages = {name: stages[name] for name in sorted(stages, key=_stage_order)}
    if shipped not in stages or "not_run" in stages[shipped]:
        raise ValueError(f"the shipped stage {shipped!r} has no measurements")
    chosen: list[dict[str, Any]] = []
    for value in selection:
        # NAME=PATH names the (one) candidate in PATH as the card calls its stage.
        name, _, path = value.rpartition("=")
        results = json.loads(Path(path).read_text())
        for system in results["systems"]:
            entry = _simulated(system, results.get("config", {}))
            chosen.append({"name": name or system["name"], "grammar": served, **entry})
    names = {entry["name"] for entry in chosen}
    chosen = [e for e in previous["selection"] if e["name"] not in names] + chosen
    if transfer_sha is not None and transfer_sha not in card_hashes["transfer_set"].values():
        raise ValueError("the transfer runs were not made on the committed transfer set")
    return {
        "title": title,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "contract_version": 2,
        "shipped_stage": shipped,
        "stages": stages,
        "selection": chosen,
        "hashes": card_hashes,
    }


def _stage_order(name: str) -> tuple[int, str]:
    order = ("base", "sft", "sft-natural", "rl")
    return (order.index(name) if name in order else len(order), name)


def _cell(estimate: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not estimate:
        return "n/a"
    mean, low, high = (estimate[k] for k in ("mean", "low", "high"))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


TRANSFER_COLUMNS = HEADINGS
"""The transfer metrics the card shows: every one `rlpa eval --transfer` reports."""


def markdown(card: Mapping[str, Any]) -> str:
    """The card's tables: the transfer set and the simulated users, one row per stage; a stage
    measured under another grammar than the card's is marked with a dagger."""
    served = grammar_hash(card["hashes"])

    def label(entry: Mapping[str, Any], name: str) -> str:
        return name if entry.get("grammar", served) == served else f"{name} \u2020"

    stages = card["stages"]
    lines = [
        "Transfer set (hand-written users; mean [bootstrap 95% interval] over users):",
        "",
        "| stage | " + " | ".join(TRANSFER_COLUMNS.values()) + " |",
        "| --- " * (len(TRANSFER_COLUMNS) + 1) + "|",
    ]
    for name, stage in stages.items():
        if "transfer" in stage:
            cells = [_cell(stage["transfer"].get(key)) for key in TRANSFER_COLUMNS]
        else:
            cells = ["not run"] + [""] * (len(TRANSFER_COLUMNS) - 1)
        lines.append("| " + " | ".join([label(stage, name), *cells]) + " |")
    lines += [
        "",
        "Simulated held-out users (catalogue matcher, eval-only judge):",
        "",
        "| stage | users x turns | profile F1 (mean over turns) | profile F1 at the last turn "
        "| response score |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, stage in stages.items():
        sim = stage.get("simulated")
        if sim is None:
            lines.append(f"| {label(stage, name)} | not run | | | |")
            continue
        measured = ("profile_f1", "profile_f1_last_turn", "response_score")
        lines.append(
            f"| {label(stage, name)} | {sim['users']} x {sim['turns']} | "
            + " | ".join(_cell(sim[key]) for key in measured)
            + " |"
        )
    if card.get("selection"):
        lines += [
            "",
            "Selection (validation users):",
            "",
            "| candidate | users x turns | profile F1 | response score |",
            "| --- | --- | --- | --- |",
        ]
        for entry in card["selection"]:
            lines.append(
                f"| {label(entry, entry['name'])} | {entry['users']} x {entry['turns']} "
                f"| {_cell(entry['profile_f1'])} | {_cell(entry['response_score'])} |"
            )
    entries = [*stages.values(), *card.get("selection", [])]
    if any(entry.get("grammar", served) != served for entry in entries):
        lines += [
            "",
            "\u2020 measured under an earlier output grammar than the one served now "
            "(server/rlpa/grammar.py); carried from an earlier card, not measured again.",
        ]
    for name, stage in stages.items():
        if "not_run" in stage:
            lines += ["", f"{name}: not run. {stage['not_run']}"]
    return "\n".join(lines) + "\n"


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} takes NAME=VALUE, not {value!r}")
        pairs[name] = target
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate.card", description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--shipped", required=True, help="the stage that ships")
    # STAGE=PATH@SYSTEM: the results name the system otherwise than the card names the stage.
    parser.add_argument("--transfer", nargs="*", default=[], metavar="STAGE=TRANSFER_JSON[@SYSTEM]")
    parser.add_argument("--simulated", nargs="*", default=[], metavar="STAGE=RESULTS_JSON[@SYSTEM]")
    parser.add_argument("--selection", nargs="*", default=[], metavar="[STAGE=]RESULTS_JSON")
    parser.add_argument("--not-run", nargs="*", default=[], metavar="STAGE=REASON")
    parser.add_argument(
        "--carry", metavar="CARD_JSON", help="keep this earlier card's stages not measured anew"
    )
    args = parser.parse_args(argv)
    card = build_card(
        args.shipped,
        _pairs(args.transfer, "--transfer"),
        _pairs(args.simulated, "--simulated"),
        args.selection,
        _pairs(args.not_run, "--not-run"),
        carry=json.loads(Path(args.carry).read_text()) if args.carry else None,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(card, indent=2) + "\n")
    print(markdown(card))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
