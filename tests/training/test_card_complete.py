"""The model card (training/evaluate/card.py): built in one call from transfer runs, complete
(every metric for the model and both notebooks on each set and setting it names), and consistent
with the repository (adapter, prompt, grammar, metric code, eval sets), its per-user files and
its README; and the shipped card is such a card. No thresholds: nothing here judges a number."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from server.backends import SHIPPED_ADAPTER
from server.rlpa import grammar, prompt
from server.settings import Settings
from training.eval_data import DEV_V1, TRANSFER_V1, TRANSFER_V2, TransferUser, load_transfer_set
from training.evaluate import card as card_module
from training.evaluate import transfer
from training.evaluate.baselines import first_statement
from training.evaluate.card import CARD_FORMAT, SETTINGS, build_card, check_card, read_count
from training.evaluate.card_numbers import METRICS, sent
from training.evaluate.config import SystemConfig
from training.recipe import read_recipe

RESAMPLES = 200
USERS = load_transfer_set(DEV_V1)[:5]
Store = Callable[[TransferUser, int], list[str]]
"""What a system has stored for a user after turn k of conversation 1."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _gold(user: TransferUser, k: int) -> list[str]:
    return [g.fact for g in user.gold if g.turn <= k]


def _echo(user: TransferUser, k: int, cut: Callable[[str], str] = str) -> list[str]:
    return [cut(m) for m in user.conversations[0][:k]]


def _entry(name: str, kind: str, store: Store, reply: str | None) -> dict[str, Any]:
    """A system's entry in transfer.json, scored by the real metrics on the dev set's users."""
    rows = []
    for user in USERS:
        said = user.conversations[0]
        replies = enumerate(said, 1) if reply is not None else ()
        exchanges = [transfer.Exchange(1, k, message, reply or "") for k, message in replies]
        end = store(user, len(said))
        profiles = transfer.UserProfiles(
            user, [store(user, k) for k in range(1, len(said) + 1)], end, exchanges
        )
        rows.append(transfer.user_metrics(profiles))
    summary = transfer.summarise(rows, resamples=RESAMPLES)
    return {
        "name": name,
        "kind": kind,
        "metrics": {m: None if e is None else e.to_dict() for m, e in summary.items()},
        "users": [{**row.to_dict(), "turns": [{"reply": reply}]} for row in rows],
    }


MODEL = ("shipped", "gateway", _gold, "Here is one idea: a short walk after dinner.")
BASE = ("base", "gateway", lambda user, k: [], "A longer answer: try a walk, a film or a book.")
NOTEBOOKS = [
    ("echo", "echo", _echo, None),
    ("echo1", "echo1", lambda user, k: _echo(user, k, first_statement), None),
]


def transfer_run(
    folder: Path,
    setting: str,
    systems: Sequence[tuple[str, str, Store, str | None]] = (MODEL, BASE),
    eval_set: Path = DEV_V1,
) -> Path:
    """A transfer.json as `rlpa eval --transfer` writes it: the notebooks beside `systems`."""
    sampling = {"do_sample": setting != "greedy", "temperature": 0.7, "top_p": 0.9}
    configs = [
        {**dataclasses.asdict(SystemConfig(name=name, kind="gateway")), **sampling}
        for name, *_ in systems
    ]
    run = {
        "created_at": "2026-12-05T10:00:00+00:00",
        "transfer_set": {"path": str(eval_set), "sha256": _sha(eval_set), "users": len(USERS)},
        "config": {"seed": 0, "bootstrap_resamples": RESAMPLES, "systems": configs},
        "systems": [_entry(*system) for system in [*NOTEBOOKS, *systems]],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "transfer.json"
    path.write_text(json.dumps(run))
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "tiny-rlpa"
    (folder / "hf-adapter").mkdir(parents=True)
    (folder / "adapter.gguf").write_bytes(b"a LoRA adapter")
    for meta in (folder / "rlpa.json", folder / "hf-adapter" / "rlpa.json"):
        meta.write_text(json.dumps({"contract_version": 2, "eval": {"stages": {}}}))
    (folder / "README.md").write_text(
        "# tiny-rlpa\n\nHow it was made.\n\n## Eval card\n\nAn old table.\n\n## Limits\n\nMany.\n"
    )
    return folder


def dev_card(model_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """dev_v1 at both settings (the served one from two runs: the model's, the base's) and
    transfer_v1 named but not measured."""
    return build_card(
        model_dir,
        {
            ("dev_v1", "greedy"): transfer_run(tmp_path / "greedy", "greedy"),
            ("dev_v1", "served"): [
                transfer_run(tmp_path / "served", "served", [MODEL]),
                transfer_run(tmp_path / "served-base", "served", [BASE]),
            ],
        },
        not_measured={
            ("transfer_v1", "greedy"): "not run for this card",
            ("transfer_v1", "served"): "not run for this card",
        },
    )


def test_a_card_built_from_transfer_runs_is_complete_and_consistent(
    model_dir: Path, tmp_path: Path
) -> None:
    card = dev_card(model_dir, tmp_path)
    assert check_card(model_dir) == []
    assert json.loads((model_dir / "eval.json").read_text()) == card
    for meta in (model_dir / "rlpa.json", model_dir / "hf-adapter" / "rlpa.json"):
        assert json.loads(meta.read_text())["eval"] == card  # the adapter carries its card

    assert card["eval_sets"]["transfer_v2"] == {
        "path": "training/eval_data/transfer_v2.jsonl",
        "sha256": _sha(TRANSFER_V2),
        "role": "held-out",
        "read_count": read_count(TRANSFER_V2),
    }
    assert card["eval_sets"]["dev_v1"]["role"] == "dev"
    assert card["results"]["transfer_v1"] == {
        s: {"not_measured": "not run for this card"} for s in SETTINGS
    }
    readme = (model_dir / "README.md").read_text()
    assert readme.startswith("# tiny-rlpa\n\nHow it was made.\n\n<!-- eval card")
    assert "An old table" not in readme and readme.endswith("-->\n\n## Limits\n\nMany.\n")
    assert "| `training/eval_data/transfer_v1.jsonl` | dev |" in readme
    assert "not measured: not run for this card | not measured: not run for this card |" in readme

    for setting in SETTINGS:
        result = card["results"]["dev_v1"][setting]
        assert result["sampling"]["temperature"] == SETTINGS[setting]["temperature"]
        for name in ("shipped", "echo", "echo1"):
            assert list(result["metrics"][name]) == list(METRICS)
        assert set(result["against"]) == {"echo", "echo1"}
        assert set(result["base"]) == {"response", "difference"}
        # Each number is a mean of the committed per-user rows, and is the README's.
        rows = json.loads((model_dir / result["per_user"]).read_text())["systems"]
        assert "turns" not in json.dumps(rows)
        for name in ("shipped", "echo", "echo1"):
            f1 = [u["f1_one_to_one"] for u in rows[name]["users"] if u["f1_one_to_one"] is not None]
            estimate = result["metrics"][name]["f1_one_to_one"]
            assert estimate["mean"] == pytest.approx(sum(f1) / len(f1))
            assert estimate["users"] == len(f1)
            assert (
                f"{estimate['mean']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}] "
                f"(n={len(f1)})" in readme
            )
        response = [u["response"] for u in rows["base"]["users"]]
        assert result["base"]["response"]["mean"] == pytest.approx(sum(response) / len(response))
        # Notebooks do not reply: nothing to judge, and no difference to take.
        assert result["metrics"]["echo"]["response"] is None
        assert result["against"]["echo"]["response"] is None


def test_the_per_user_files_hold_only_what_the_numbers_need(
    model_dir: Path, tmp_path: Path
) -> None:
    card = dev_card(model_dir, tmp_path)
    path = model_dir / card["results"]["dev_v1"]["greedy"]["per_user"]
    rows = json.loads(path.read_text())["systems"]
    assert set(rows) == {"echo", "echo1", "shipped", "base"}
    assert set(rows["base"]["users"][0]) == {"user", "response"}
    assert "run_on" not in rows["shipped"]["users"][0]
    lines = path.read_text().splitlines()
    assert sum(line.lstrip().startswith('{"user": ') for line in lines) == 4 * len(USERS)


def test_every_setting_of_a_set_named_is_run_or_said_not_measured(
    model_dir: Path, tmp_path: Path
) -> None:
    greedy = transfer_run(tmp_path / "greedy", "greedy")
    with pytest.raises(ValueError, match="say why it was not measured"):
        build_card(model_dir, {("dev_v1", "greedy"): greedy})
    with pytest.raises(ValueError, match="say why it was not measured"):
        build_card(
            model_dir, {("dev_v1", "greedy"): greedy}, not_measured={("dev_v1", "served"): " "}
        )
    card = build_card(
        model_dir, {("dev_v1", "greedy"): greedy}, not_measured={("dev_v1", "served"): "no time"}
    )
    assert card["results"]["dev_v1"]["served"] == {"not_measured": "no time"}
    readme = (model_dir / "README.md").read_text()
    assert "### dev_v1 (dev set): served sampling" in readme and "Not measured: no time" in readme
    assert check_card(model_dir) == []


def test_runs_made_otherwise_than_the_card_says_are_refused(
    model_dir: Path, tmp_path: Path
) -> None:
    served = transfer_run(tmp_path / "served", "served")
    with pytest.raises(ValueError, match="was sent"):
        build_card(
            model_dir, {("dev_v1", "greedy"): served}, not_measured={("dev_v1", "served"): "-"}
        )
    other_set = transfer_run(tmp_path / "v1", "greedy", eval_set=TRANSFER_V1)
    with pytest.raises(ValueError, match="not a run on the committed"):
        build_card(
            model_dir, {("dev_v1", "greedy"): other_set}, not_measured={("dev_v1", "served"): "-"}
        )
    with pytest.raises(ValueError, match="no rl in"):
        build_card(
            model_dir,
            {("dev_v1", "greedy"): transfer_run(tmp_path / "g", "greedy")},
            not_measured={("dev_v1", "served"): "-"},
            system="rl",
        )
    old = json.loads(served.read_text())
    for entry in old["systems"]:
        for user in entry["users"]:
            del user["f1_one_to_one"]
    served.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="older than the metrics"):
        build_card(
            model_dir, {("dev_v1", "served"): served}, not_measured={("dev_v1", "greedy"): "-"}
        )
    assert not (model_dir / "eval.json").exists()  # nothing written by a refused card


def _problems_after(model_dir: Path, change: Callable[[], object]) -> str:
    change()
    return "\n".join(check_card(model_dir))


def test_a_changed_adapter_prompt_grammar_or_metric_code_asks_for_the_card_again(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_card(model_dir, tmp_path)
    rerun = "changed since the card was built: re-run the card"
    with monkeypatch.context() as patch:
        said = _problems_after(
            model_dir, lambda: patch.setattr(prompt, "SYSTEM_PROMPT_V2", "Be brief.")
        )
        assert f"prompt server/rlpa/prompt.py (system prompt, contract v2) {rerun}" in said
    with monkeypatch.context() as patch:
        said = _problems_after(
            model_dir, lambda: patch.setattr(grammar, "FORMAT_GBNF", 'root ::= "x"')
        )
        assert f"grammar server/rlpa/grammar.py (FORMAT_GBNF) {rerun}" in said
    assert check_card(model_dir) == []
    eval_json = model_dir / "eval.json"
    built = json.loads(eval_json.read_text())  # as if built while yardsticks.py read otherwise
    built["hashes"]["metric_code"]["training/evaluate/yardsticks.py"] = "0" * 64
    said = _problems_after(model_dir, lambda: eval_json.write_text(json.dumps(built)))
    assert f"metric_code training/evaluate/yardsticks.py {rerun}" in said
    dev_card(model_dir, tmp_path)
    assert check_card(model_dir) == []
    said = _problems_after(model_dir, lambda: (model_dir / "adapter.gguf").write_bytes(b"new"))
    assert f"adapter adapter.gguf {rerun}" in said


def test_readme_per_user_files_and_eval_json_must_agree(model_dir: Path, tmp_path: Path) -> None:
    card = dev_card(model_dir, tmp_path)
    readme = model_dir / "README.md"
    text = readme.read_text()
    estimate = card["results"]["dev_v1"]["greedy"]["metrics"]["shipped"]["f1_one_to_one"]
    written = f"| F1 (one-to-one) | {estimate['mean']:.3f}"
    readme.write_text(text.replace(written, "| F1 (one-to-one) | 0.999", 1))
    assert check_card(model_dir) == [
        "README.md: its card section is not eval.json's: re-run the card "
        "(training/README.md, 'The model card')"
    ]
    readme.write_text(text)

    per_user = model_dir / card["results"]["dev_v1"]["greedy"]["per_user"]
    rows = per_user.read_text()
    record = json.loads(rows)
    record["systems"]["shipped"]["users"][0]["f1_one_to_one"] = 0.0123
    per_user.write_text(json.dumps(record))
    said = "\n".join(check_card(model_dir))
    assert "dev_v1 greedy: eval/dev_v1-greedy.json changed since the card was built" in said
    assert "metrics shipped f1_one_to_one does not reproduce" in said
    per_user.unlink()
    assert "eval/dev_v1-greedy.json is missing" in "\n".join(check_card(model_dir))
    per_user.write_text(rows)
    (model_dir / "eval" / "dev_v1-stale.json").write_text("{}")
    assert "a per-user file the card does not name" in "\n".join(check_card(model_dir))


def test_a_held_out_set_is_put_on_a_card_only_with_its_reading_recorded(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dev set's users under the held-out set's name: no test reads transfer_v2 itself.
    run = transfer_run(tmp_path / "v2", "greedy")
    labelled = json.loads(run.read_text())
    labelled["transfer_set"] |= {"path": str(TRANSFER_V2), "sha256": _sha(TRANSFER_V2)}
    run.write_text(json.dumps(labelled))
    runs = {("transfer_v2", "greedy"): run}
    not_measured = {("transfer_v2", "served"): "greedy only"}
    assert read_count(TRANSFER_V2) == 0
    with pytest.raises(ValueError, match="record this reading"):
        build_card(model_dir, runs, not_measured=not_measured)

    readings = tmp_path / "README.md"
    recorded = card_module.READINGS.read_text().replace(
        "Not read yet.", "1. 2026-12-05, tiny-rlpa, `rlpa eval --transfer ...`, its card"
    )
    readings.write_text(recorded)
    with monkeypatch.context() as patch:
        patch.setattr(card_module, "READINGS", readings)
        card = build_card(model_dir, runs, not_measured=not_measured)
        assert card["eval_sets"]["transfer_v2"]["read_count"] == 1
        assert check_card(model_dir) == []
        assert "| held-out, read count 1 |" in (model_dir / "README.md").read_text()
    said = "\n".join(check_card(model_dir))  # the reading recorded on the card was not committed
    assert "transfer_v2: the card counts readings that" in said


def test_read_count_counts_the_numbered_readings_of_the_sets_own_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Set a (`a.jsonl`)\n\n## Readings\n\n1. first\n2. second\n\n"
        "# Set b (`b.jsonl`)\n\n## Readings\n\nNot read yet.\n\n# Set c (`c.jsonl`)\n\nText.\n"
    )
    assert read_count(Path("a.jsonl"), readme) == 2
    assert read_count(Path("b.jsonl"), readme) == 0
    with pytest.raises(ValueError, match=r"records no readings of c\.jsonl"):
        read_count(Path("c.jsonl"), readme)


def test_the_settings_are_the_recipes_and_the_gateways_defaults() -> None:
    fields = Settings.model_fields
    assert SETTINGS["served"] == {
        "temperature": fields["embedded_temperature"].default,
        "top_p": fields["embedded_top_p"].default,
    }
    for setting, recipe in (("greedy", "transfer"), ("served", "transfer_served")):
        system = dataclasses.asdict(SystemConfig(name="x", kind="gateway"))
        given = sent({**system, **read_recipe(recipe)["system_defaults"]})
        assert given == {**given, **SETTINGS[setting]}, recipe
        assert given["max_new_tokens"] == fields["default_max_tokens"].default


def test_the_shipped_card_is_complete_and_consistent() -> None:
    shipped = SHIPPED_ADAPTER.parent
    card = json.loads((shipped / "eval.json").read_text())
    assert card["card_format"] == CARD_FORMAT
    assert check_card(shipped) == []
    assert any("per_user" in r for by in card["results"].values() for r in by.values())
