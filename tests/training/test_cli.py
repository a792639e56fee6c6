"""The training command line: recipes, overrides and flags, and the hand-over to eval/export."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "recipe", sorted(p.stem for stage in ("sft", "rl") for p in RECIPES.glob(f"{stage}_*.yaml"))
)
def test_every_shipped_training_recipe_loads(recipe: str) -> None:
    cls = SFTRunConfig if recipe.startswith("sft") else RLRunConfig
    config = load_config(cls, recipe)
    assert config.output_dir


def test_train_eval_and_export_each_run_through_the_gateways_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`rlpa train|eval|export` reach their stage's own entry point, named explicitly."""
    out = tmp_path / "sft"
    assert (
        server_cli.main(
            ["train", "sft", "--recipe", "sft_tiny", "--output-dir", str(out), "--print-config"]
        )
        == 0
    )
    assert yaml.safe_load(capsys.readouterr().out)["output_dir"] == str(out)
    for command, flag in (("eval", "--transfer"), ("export", "--checkpoint")):
        with pytest.raises(SystemExit) as exited:
            server_cli.main([command, "--help"])
        assert exited.value.code == 0
        assert flag in capsys.readouterr().out
    assert cli.HANDOVERS == {"eval": "training.evaluate", "export": "training.export.main"}
    # A missing recipe is a clear error naming the shipped ones, from the one loader.
    with pytest.raises(FileNotFoundError, match="sft_cpu"):
        read_recipe("no-such-recipe")


def test_the_command_line_imports_nothing_heavy_until_it_runs() -> None:
    code = (
        "import sys, training.cli as c\n"
        "try:\n    c.main(['train', 'sft', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")
