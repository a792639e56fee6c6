"""The training command line: every stage's recipe through the one loader, overrides and flags,
the eval subcommands (and the old eval flags, for one release), and export."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from server import cli as server_cli
from training import cli
from training.config import RLRunConfig, SFTRunConfig, load_config
from training.recipe import RECIPES, read_recipe


def _printed(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert cli.main([*argv, "--print-config"]) == 0
    config: dict[str, Any] = yaml.safe_load(capsys.readouterr().out)
    return config


def test_a_recipe_with_overrides_and_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = _printed(
        capsys,
        "train", "sft", "--recipe", "sft_tiny",
        "--set", "learning_rate=5e-4",
        "--set", "lora_target_modules=[q_proj, v_proj]",
        "--set", "max_steps=3",
        "--max-steps", "7",
        "--output-dir", str(tmp_path),
        "--resume",
    )  # fmt: skip

    assert config["learning_rate"] == 5e-4  # YAML would read "5e-4" as a string
    assert config["lora_target_modules"] == ["q_proj", "v_proj"]
    assert config["max_steps"] == 7  # explicit flags win over --set
    assert config["output_dir"] == str(tmp_path)
    assert config["resume_from_checkpoint"] == "latest"
    assert config["num_profiles"] == 6  # from the recipe


def test_rl_takes_its_recipe_and_keeps_turns_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    config = _printed(capsys, "train", "rl", "--recipe", "rl_tiny", "--set", "matcher=llm")

    assert config["matcher"] == "llm"
    assert config["num_generations"] == 2
    assert config["shuffle_dataset"] is False


def test_a_recipe_can_be_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("max_turns: 3\nlearning_rate: 1e-5\nbf16: false\n")

    config = _printed(capsys, "train", "sft", "--recipe", str(recipe))
    assert (config["max_turns"], config["learning_rate"]) == (3, 1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "num_generation=3"], "did you mean num_generations"),
        (["--set", "no-equals-sign"], "is not key=value"),
        (["--recipe", "no_such_recipe"], "no recipe"),
    ],
)
def test_bad_configs_are_refused_by_name(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["train", "rl", "--recipe", "rl_tiny", *argv]) == 2
    assert message in capsys.readouterr().err


def _stage(recipe: str) -> type[Any]:
    """The config a shipped recipe is for: its name says (`eval`'s have several names)."""
    from training.evaluate.config import EvalConfig

    if recipe.startswith("sft_"):
        return SFTRunConfig
    return RLRunConfig if recipe.startswith("rl_") else EvalConfig


# accelerate's launcher config lives beside the recipes but is no stage's.
SHIPPED = sorted(p.stem for p in RECIPES.glob("*.yaml") if p.stem != "accelerate_zero3")


@pytest.mark.parametrize("recipe", SHIPPED)
def test_every_shipped_recipe_loads_through_the_one_loader(recipe: str) -> None:
    config = load_config(_stage(recipe), recipe)
    assert config.output_dir


def test_a_recipe_for_each_stage_loads_and_refuses_unknown_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = tmp_path / "export.yaml"
    export.write_text("checkpoint: runs/rl/final\nout_dir: models/x\ngguf_dtype: f16\n")
    stages = [
        ["train", "sft", "--recipe", "sft_tiny"],
        ["train", "rl", "--recipe", "rl_tiny"],
        ["eval", "run", "--recipe", "eval_tiny"],
        ["eval", "transfer", "--recipe", "transfer"],
        ["eval", "compare", "a/results.json", "--recipe", "eval_card"],
        ["export", "--recipe", str(export)],
    ]
    for argv in stages:
        assert _printed(
            capsys, *argv, "--set", "seed=3" if argv[0] != "export" else "gguf_dtype=f32"
        )
        assert cli.main([*argv, "--set", "no_such_key=1"]) == 2
        assert "unknown config key 'no_such_key'" in capsys.readouterr().err
    assert _printed(capsys, "export", "--recipe", str(export))["gguf_dtype"] == "f16"


@pytest.mark.parametrize(
    ("argv", "command", "expect"),
    [
        (["train", "sft", "--recipe", "sft_tiny"], "train", {"max_turns": 2}),
        (["train", "rl", "--recipe", "rl_tiny", "--set", "judge=llm"], "train", {"judge": "llm"}),
        (
            ["eval", "run", "--recipe", "eval_tiny", "--checkpoint", "sft=runs/sft/final"],
            "run",
            {"turns": 2, "transfer_path": None},
        ),
        (["eval", "transfer", "dev.jsonl", "--transfer-users", "2"], "transfer",
         {"transfer_path": "dev.jsonl", "transfer_users": 2}),
        (["eval", "compare", "a.json", "b.json", "--title", "both"], "compare", {"title": "both"}),
        (
            ["export", "--checkpoint", "c", "--out-dir", "o", "--formats", "hf-merged,hf-adapter"],
            "export",
            {"formats": ["hf-merged", "hf-adapter"], "checkpoint": "c"},
        ),
    ],
)  # fmt: skip
def test_each_command_parses_into_its_stage_config(
    argv: list[str], command: str, expect: dict[str, Any]
) -> None:
    args, config = cli.parse(argv)
    assert (getattr(args, "eval_command", None) or args.command) == command
    assert {key: getattr(config, key) for key in expect} == expect


def test_eval_card_is_the_cards_own_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "card", "--help"])
    assert exited.value.code == 0
    assert "python -m training.evaluate.card" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["--recipe", "eval_tiny", "--checkpoint", "a=x", "--card", "c.json"], "run"),
        (["--transfer", "--gateway", "http://x"], "transfer"),
        (["--transfer=dev.jsonl"], "transfer"),
        (["--recipe", "eval_card", "--compare", "a.json", "b.json"], "compare"),
    ],
)
def test_the_old_eval_flags_still_reach_their_subcommand_for_one_release(
    old: list[str], new: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args, config = cli.parse(["eval", *old])
    assert args.eval_command == new
    assert f"read as `rlpa eval {new}" in capsys.readouterr().err
    if new == "transfer":
        assert config.transfer_path.endswith(("transfer_v1.jsonl", "dev.jsonl"))


def test_train_eval_and_export_each_run_through_the_gateways_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`rlpa train|eval|export` reach the training command line, which names every stage."""
    out = tmp_path / "sft"
    assert (
        server_cli.main(
            ["train", "sft", "--recipe", "sft_tiny", "--output-dir", str(out), "--print-config"]
        )
        == 0
    )
    assert yaml.safe_load(capsys.readouterr().out)["output_dir"] == str(out)
    for argv, flag in (
        (["eval", "run"], "--checkpoint"),
        (["eval", "transfer"], "--transfer-users"),
        (["eval", "compare"], "RESULTS_JSON"),
        (["export"], "--checkpoint"),
    ):
        with pytest.raises(SystemExit) as exited:
            server_cli.main([*argv, "--help"])
        assert exited.value.code == 0
        assert flag in capsys.readouterr().out
    # A missing recipe is a clear error naming the shipped ones, from the one loader.
    with pytest.raises(FileNotFoundError, match="sft_cpu"):
        read_recipe("no-such-recipe")


def test_the_command_line_imports_its_stages_by_name_not_by_string() -> None:
    tree = ast.parse(Path(cli.__file__).read_text())
    imported = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    stages = {"training.sft", "training.rl", "training.evaluate", "training.evaluate.card"}
    assert stages | {"training.export.main.run_export"} <= imported
    assert not any(name.startswith("importlib") for name in imported)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["train", "sft", "--help"], ["eval", "run", "--help"], ["export", "--help"]],
)
def test_the_command_line_imports_nothing_heavy_until_it_runs(argv: list[str]) -> None:
    code = (
        "import sys, training.cli as c\n"
        f"try:\n    c.main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def test_eval_conflicts_hands_its_arguments_to_the_conflicts_runner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", "conflicts", "--help"])
    assert exit_.value.code == 0
    assert "--conflicts" in capsys.readouterr().out
