"""`rlpa train sft`, then `rlpa train rl` on its adapter, each launched by `accelerate launch` as
two processes joined by torch.distributed on gloo (CPU): the Qwen recipes scaled down as in
test_qwen_path.py, on the tiny Qwen2. Each run writes one adapter, once, that PEFT loads on the
base; both processes trained (each saved its RNG state) and the rollout kept each conversation
on the process that started it.

`accelerate launch --cpu --num_processes 2` would start one process: accelerate 1.16 hands
`--cpu` to its simple launcher, which starts several only under mpirun. `--multi_gpu` starts them
through torchrun, and ACCELERATE_USE_CPU=true makes the trainer join them on gloo, as on GPUs
they would join on NCCL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.live import free_port
from tests.training.test_qwen_path import RL, SFT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PROCESSES = 2


def _launch(stage: str, recipe: str, values: dict[str, Any], cwd: Path) -> str:
    """`rlpa train STAGE --recipe RECIPE --set KEY=VALUE...` in PROCESSES processes; stdout."""
    sets = [
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in values.items()
    ]
    command = [
        str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(PROCESSES),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        str(BIN / "rlpa"), "train", stage, "--recipe", recipe,
        *(word for pair in sets for word in ("--set", pair)),
    ]  # fmt: skip
    # One torch thread per process: two processes share the machine's cores.
    env = os.environ | {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def _logged(out: Path, key: str) -> list[float]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [line[key] for line in lines if key in line]


def _adapter_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def _check_run(out: Path, stdout: str, base: Path) -> Path:
    """One final adapter with its rlpa.json, written once by one of the processes that trained."""
    assert stdout.count("final model:") == PROCESSES  # every process ran to the end
    final = out / "final"
    assert (final / "adapter_config.json").is_file() and (final / "rlpa.json").is_file()
    card = json.loads((final / "rlpa.json").read_text())
    assert card["base_model"] == str(base)
    # Each process saves its own RNG state in a checkpoint: both took the two steps.
    for checkpoint in (out / "checkpoint-1", out / "checkpoint-2"):
        states = sorted(path.name for path in checkpoint.glob("rng_state*.pth"))
        assert states == [f"rng_state_{rank}.pth" for rank in range(PROCESSES)], states
    # Logged once per step, not once per process.
    assert len(_logged(out, "loss")) == 2
    return final


def _load(base: Path, adapter: Path) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Any dinner ideas?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    generated = model.generate(**prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 3
    return model


def test_sft_then_rl_launched_on_two_processes_write_one_adapter_that_loads(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    import torch

    sft_out, rl_out = tmp_path / "sft", tmp_path / "rl"
    base = {"base_model": str(tiny_qwen_dir)}
    stdout = _launch("sft", "sft_qwen_gpu", {**SFT, **base, "output_dir": str(sft_out)}, tmp_path)
    sft_final = _check_run(sft_out, stdout, tiny_qwen_dir)
    sft_weights = _adapter_weights(sft_final)
    # LoRA's B matrices start at zero: non-zero ones were trained.
    assert any(w.abs().sum() > 0 for name, w in sft_weights.items() if "lora_B" in name)
    _load(tiny_qwen_dir, sft_final)

    rl = {**RL, **base, "init_adapter": str(sft_final), "output_dir": str(rl_out)}
    stdout = _launch("rl", "rl_qwen_gpu", rl, tmp_path)
    rl_final = _check_run(rl_out, stdout, tiny_qwen_dir)
    # Averaged over both processes: a conversation's second turn found the first on the process
    # that sampled it (one restarted on the other process would count turn 0).
    assert _logged(rl_out, "rollout/turn") == [0.0, 1.0]
    rl_weights = _adapter_weights(rl_final)
    assert rl_weights.keys() == sft_weights.keys()
    assert any(not torch.equal(rl_weights[name], sft_weights[name]) for name in rl_weights)
    _load(tiny_qwen_dir, rl_final)
