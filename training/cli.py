"""The training command line, reached as `rlpa train ...`, `rlpa eval ...` and `rlpa export ...`.

    rlpa train sft --recipe sft_cpu [--output-dir DIR] [--resume [CHECKPOINT]] [--set KEY=VALUE]
    rlpa train rl  --recipe rl_cpu  --init-adapter runs/sft/final --resume

A recipe is a YAML file, or the name of one in training/recipes. Precedence: the recipe, then
each `--set key=value` (any config field), then the explicit flags. `eval` and `export` hand over
to `training.evaluate` and `training.export.main`, which parse their own arguments.

Nothing heavy is imported until a command runs, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

STAGES = {
    "sft": ("training.sft", "SFTRunConfig", "supervised warm start on template dialogues"),
    "rl": ("training.rl", "RLRunConfig", "multi-turn RL (GRPO) against the simulated user"),
}
# Commands that belong to other modules, which parse their own arguments.
HANDOVERS = {"eval": "training.evaluate", "export": "training.export.main"}
# Explicit flags and the config fields they set.
FLAGS = {
    "output_dir": "output_dir",
    "resume": "resume_from_checkpoint",
    "max_steps": "max_steps",
    "base_model": "base_model",
    "init_adapter": "init_adapter",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlpa", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a policy (sft, then rl)")
    stages = train.add_subparsers(dest="stage", required=True)
    for stage, (_, _, summary) in STAGES.items():
        sub = stages.add_parser(stage, help=summary, description=summary)
        sub.add_argument("--recipe", default=f"{stage}_cpu", help="YAML file or shipped name")
        sub.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
            help="override any config field (repeatable); VALUE is read as YAML",
        )  # fmt: skip
        sub.add_argument("--output-dir", help="where checkpoints and the final model go")
        sub.add_argument(
            "--resume", nargs="?", const="latest", metavar="CHECKPOINT",
            help="continue from CHECKPOINT, or alone: the newest one in the output dir",
        )  # fmt: skip
        sub.add_argument("--max-steps", type=int)
        sub.add_argument("--base-model", help="'' (SmolLM2 GGUF), a .gguf file or a HF dir")
        sub.add_argument("--init-adapter", help="a PEFT adapter to keep training")
        sub.add_argument("--print-config", action="store_true", help="print it and exit")
    for name, module in HANDOVERS.items():
        commands.add_parser(name, help=f"hands over to {module} (see its --help)")
    return parser


def load_stage_config(stage: str, args: argparse.Namespace) -> Any:
    """The stage's config from the recipe, the --set overrides and the explicit flags."""
    from training.config import load_config, parse_overrides

    cls = getattr(importlib.import_module("training.config"), STAGES[stage][1])
    overrides = parse_overrides(args.overrides)
    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()}
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_config(cls, args.recipe, overrides)


def hand_over(command: str, argv: Sequence[str]) -> int:
    result = importlib.import_module(HANDOVERS[command]).main(list(argv))
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HANDOVERS:
        return hand_over(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_stage_config(args.stage, args)
    except (ValueError, FileNotFoundError) as error:
        print(f"rlpa train {args.stage}: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        from training.config import recipe_dict

        plain = json.loads(json.dumps(recipe_dict(config), default=str))
        print(yaml.safe_dump(plain, sort_keys=True), end="")
        return 0
    final = importlib.import_module(STAGES[args.stage][0]).main(config)
    print(f"final model: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
