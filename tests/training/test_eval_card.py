"""The shipped model's eval card is assembled from the runs that measured it, and refuses runs
made on another transfer set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from training.eval_data import TRANSFER_V1
from training.evaluate.card import build_card, grammar_hash, hashes, markdown

SHA = hashlib.sha256(TRANSFER_V1.read_bytes()).hexdigest()


def estimate(mean: float) -> dict[str, Any]:
    return {"mean": mean, "low": mean - 0.1, "high": mean + 0.1, "users": 46}


def transfer_run(tmp_path: Path, name: str, sha: str) -> str:
    metrics = {k: estimate(0.5) for k in ("f1", "precision", "recall", "retention")}
    metrics |= {"contradiction_rate": estimate(0.01), "turn1_recall": None, "response": None}
    results = {
        "transfer_set": {"path": str(TRANSFER_V1), "sha256": sha, "users": 46},
        "systems": [{"name": name, "metrics": metrics}],
    }
    path = tmp_path / f"{name}-transfer.json"
    path.write_text(json.dumps(results))
    return str(path)


def simulated_run(tmp_path: Path, name: str, split: str) -> str:
    summary = {
        "users": 100,
        "turns": 3,
        "profile_f1": {"by_turn": [0.1, 0.2, 0.3]},
        "intervals": {k: estimate(0.2) for k in ("profile_f1", "profile_f1_last_turn")}
        | {"response_score": estimate(0.6)},
    }
    config = {"split": split, "users": 100, "turns": 3, "judge": "eval", "matcher": "catalogue"}
    path = tmp_path / f"{name}-{split}.json"
    path.write_text(json.dumps({"config": config, "systems": [{"name": name, "summary": summary}]}))
    return str(path)


def base_and_sft_card(tmp_path: Path, not_run: dict[str, str] | None = None) -> dict[str, Any]:
    """A card that measured base and sft on the committed transfer set; sft ships."""
    return build_card(
        "sft",
        {s: transfer_run(tmp_path, s, SHA) for s in ("base", "sft")},
        {s: simulated_run(tmp_path, s, "test") for s in ("base", "sft")},
        [simulated_run(tmp_path, "sft", "validation")],
        not_run,
    )


def test_the_card_keeps_each_stage_its_intervals_and_the_hashes_of_what_it_was_measured_on(
    tmp_path: Path,
) -> None:
    card = base_and_sft_card(tmp_path, {"rl": "did not finish"})
    assert list(card["stages"]) == ["base", "sft", "rl"]
    assert card["stages"]["sft"]["transfer"]["f1"]["mean"] == 0.5
    assert card["stages"]["sft"]["simulated"]["profile_f1"]["low"] == pytest.approx(0.1)
    assert card["stages"]["rl"] == {"not_run": "did not finish"}
    assert card["selection"][0]["settings"]["split"] == "validation"
    assert card["hashes"] == hashes()
    assert SHA in card["hashes"]["transfer_set"].values()
    table = markdown(card)
    assert "| sft | 0.500 [0.400, 0.600] |" in table and "rl: not run. did not finish" in table


def test_runs_on_another_transfer_set_or_an_unmeasured_shipped_stage_are_refused(
    tmp_path: Path,
) -> None:
    other = transfer_run(tmp_path, "sft", "0" * 64)
    with pytest.raises(ValueError, match="committed transfer set"):
        build_card("sft", {"sft": other}, {})
    with pytest.raises(ValueError, match="no measurements"):
        build_card("rl", {}, {"sft": simulated_run(tmp_path, "sft", "test")}, (), {"rl": "no"})


def test_an_earlier_cards_stages_are_carried_only_while_what_it_hashed_is_unchanged(
    tmp_path: Path,
) -> None:
    earlier = base_and_sft_card(tmp_path, {"rl": "not yet"})
    card = build_card(
        "rl",
        {"rl": transfer_run(tmp_path, "rl", SHA)},
        {"rl": simulated_run(tmp_path, "rl", "test")},
        [simulated_run(tmp_path, "rl", "validation")],
        carry=earlier,
    )
    assert list(card["stages"]) == ["base", "sft", "rl"]
    assert card["stages"]["sft"] == earlier["stages"]["sft"]
    assert [e["name"] for e in card["selection"]] == ["sft", "rl"]

    stale = json.loads(json.dumps(earlier))
    recipe = next(iter(stale["hashes"]["recipes"]))
    stale["hashes"]["recipes"][recipe] = "0" * 64
    with pytest.raises(ValueError, match="changed since the carried card"):
        build_card("rl", {}, {"rl": simulated_run(tmp_path, "rl", "test")}, carry=stale)


def test_a_stage_may_be_named_otherwise_than_the_system_in_its_runs(tmp_path: Path) -> None:
    card = build_card(
        "sft-natural",
        {"sft-natural": transfer_run(tmp_path, "sftn", SHA) + "@sftn"},
        {"sft-natural": simulated_run(tmp_path, "sftn", "test") + "@sftn"},
        ["sft-natural=" + simulated_run(tmp_path, "sftn", "validation")],
    )
    assert list(card["stages"]) == ["sft-natural"]
    assert card["selection"][0]["name"] == "sft-natural"
    with pytest.raises(ValueError, match="no system 'sft-natural'"):
        build_card("sft-natural", {"sft-natural": transfer_run(tmp_path, "sftn", SHA)}, {})


def test_stages_carried_from_a_card_measured_under_another_grammar_are_marked(
    tmp_path: Path,
) -> None:
    earlier = base_and_sft_card(tmp_path)
    served = grammar_hash(hashes())
    assert {stage["grammar"] for stage in earlier["stages"].values()} == {served}
    assert "\u2020" not in markdown(earlier)

    # The same card as one from before the grammar was hashed: its entries say nothing.
    older = json.loads(json.dumps(earlier))
    del older["hashes"]["grammar"]
    for entry in [*older["stages"].values(), *older["selection"]]:
        del entry["grammar"]
    card = build_card(
        "sft-natural",
        {"sft-natural": transfer_run(tmp_path, "sft-natural", SHA)},
        {"sft-natural": simulated_run(tmp_path, "sft-natural", "test")},
        ["sft-natural=" + simulated_run(tmp_path, "sft-natural", "validation")],
        carry=older,
    )
    assert card["stages"]["sft"]["grammar"] is None
    assert card["stages"]["sft-natural"]["grammar"] == served
    assert [(e["name"], e["grammar"]) for e in card["selection"]] == [
        ("sft", None),
        ("sft-natural", served),
    ]
    table = markdown(card)
    assert "| sft \u2020 | 0.500" in table and "| sft-natural | 0.500" in table
    assert "\u2020 measured under an earlier output grammar" in table
