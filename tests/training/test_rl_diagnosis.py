"""The RL diagnosis (training/evaluate/rl_diagnosis.py): control and treatment logs paired by
step, and two tiny adapters sampled at the same fixed states and scored by the training reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.evaluate import rl_diagnosis


def _log(path: Path, rewards: list[float]) -> Path:
    lines = [{"step": 0, "train_runtime": 1.0}]  # the trainer's summary line has no reward
    lines += [
        {"step": i + 1, "reward": r, "frac_reward_zero_std": 0.5, "rewards/profile/mean": r / 2}
        for i, r in enumerate(rewards)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_logs_are_paired_by_step_and_windowed(tmp_path: Path) -> None:
    control = rl_diagnosis.read_log(_log(tmp_path / "c.jsonl", [2.0, 2.0, 1.0, 1.0]))
    treatment = rl_diagnosis.read_log(_log(tmp_path / "t.jsonl", [2.0, 2.0, 0.5, 0.5]))

    report = rl_diagnosis.logs_report(control, treatment, window=2, skip=2)

    windows = report["metrics"]["reward"]["windows"]
    assert [(w["first"], w["last"]) for w in windows] == [(1, 2), (3, 4)]
    assert [w["difference"] for w in windows] == [0.0, -0.5]
    paired = report["metrics"]["reward"]["paired_after_step_2"]
    assert paired["mean"] == pytest.approx(-0.5) and paired["users"] == 2
    assert "kl" in report["not_logged"]  # beta 0: TRL logs none
    assert "| 3-4 | 1.000 | 0.500 | -0.500 |" in rl_diagnosis.logs_markdown(report)


def _adapter(base: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(str(out), save_embedding_layers=False)
    return out


def test_fixed_states_are_scored_for_each_adapter_with_paired_numbers(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    before = _adapter(tiny_llama_dir, tmp_path / "before", seed=1)
    after = _adapter(tiny_llama_dir, tmp_path / "after", seed=2)
    out = tmp_path / "fixed.json"

    argv = ["fixed", "--recipe", "rl_tiny", "--set", f"base_model={tiny_llama_dir}"]
    argv += ["--adapter", f"before={before}", "--adapter", f"after={after}"]
    argv += ["--conversations", "1", "--candidates", "3", "--json", str(out)]
    assert rl_diagnosis.main(argv) == 0

    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["states"] == 2  # rl_tiny: 2 turns of one conversation
    assert [s["turn"] for s in report["states"]] == [0, 1]
    assert list(summary["adapters"]) == ["before", "after"]
    for state in report["states"]:
        assert all(len(s["profile"]) == 3 for s in state["scores"].values())
    first, second = summary["adapters"]["before"], summary["adapters"]["after"]
    assert "log_ratio_to_first" not in first and "total_minus_first" not in first
    paired = second["total_minus_first"]
    assert paired["users"] == 2
    assert paired["mean"] == pytest.approx(second["total"] - first["total"])
    assert second["log_ratio_to_first"] == second["log_ratio_to_first"]  # not NaN

    again = tmp_path / "again.json"
    assert rl_diagnosis.main([*argv[:-1], str(again)]) == 0  # same seed, same states and scores
    assert json.loads(again.read_text())["states"] == report["states"]
