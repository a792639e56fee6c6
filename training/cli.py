"""The training command line, reached as `rlpa train ...`, `rlpa eval ...` and `rlpa export ...`.

    rlpa train sft --recipe sft_cpu [--output-dir DIR] [--resume [CHECKPOINT]] [--set KEY=VALUE]
    rlpa train rl  --recipe rl_cpu  --init-adapter runs/sft/final --resume
    rlpa eval run --recipe eval_cpu --checkpoint sft=runs/sft/final   (simulated held-out users)
    rlpa eval transfer [JSONL] --gateway shipped=http://127.0.0.1:8000   (the transfer set)
    rlpa eval compare A/results.json B/results.json --output-dir runs/a-vs-b
    rlpa eval card models/smollm2-135m-rlpa --run SET:SETTING=TRANSFER_JSON ...  (card.py)
    rlpa export --checkpoint runs/rl/final --out-dir models/rlpa

Every stage's config is loaded by the one loader (`training.recipe.load_config`): the recipe (a
YAML file, or the name of one in training/recipes), then each `--set key=value` (any config
field), then the explicit flags; unknown keys are refused by name; `--print-config` prints the
result and exits. Arguments are parsed here only, the stages being functions fed a config; the
one exception is `eval card`, whose arguments training/evaluate/card.py parses.

Each stage is imported inside the command that runs it, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from training.components import JUDGES, MATCHERS
from training.eval_data import TRANSFER_V1

EVAL_COMMANDS = ("run", "transfer", "compare", "card", "conflicts")
# Explicit training flags and the config fields they set.
TRAIN_FLAGS = {
    "output_dir": "output_dir",
    "resume": "resume_from_checkpoint",
    "max_steps": "max_steps",
    "base_model": "base_model",
    "init_adapter": "init_adapter",
}
# Explicit eval flags and the EvalConfig fields they set (the system flags add systems instead).
EVAL_FLAGS = {
    "users": "users",
    "turns": "turns",
    "seed": "seed",
    "torch_threads": "torch_threads",
    "profiles": "profiles_path",
    "change_at_turn": "change_at_turn",
    "matcher": "matcher",
    "judge": "judge",
    "output_dir": "output_dir",
    "title": "title",
    "transfer": "transfer_path",
    "transfer_users": "transfer_users",
}
# Explicit export flags: each sets the ExportConfig field of its name.
EXPORT_FLAGS = (
    "checkpoint",
    "out_dir",
    "base_model",
    "eval_summary",
    "gguf_dtype",
    "hf_adapter_dtype",
)

Load = Callable[[argparse.Namespace], Any]
Run = Callable[[Any, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlpa", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a policy (sft, then rl)")
    stages = train.add_subparsers(dest="stage", required=True)
    _add_train(stages, "sft", "supervised warm start on template dialogues", _load_sft, _run_sft)
    _add_train(stages, "rl", "multi-turn RL (GRPO) against the simulated user", _load_rl, _run_rl)
    evaluate = commands.add_parser("eval", help="measure systems: run, transfer, compare, card")
    _add_eval(evaluate.add_subparsers(dest="eval_command", required=True))
    _add_export(commands.add_parser("export", help="a trained model in the forms servers load"))
    return parser


def _command(parser: argparse.ArgumentParser, load: Load, run: Run) -> None:
    parser.set_defaults(load=load, run=run)


def _recipe_flags(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--recipe", default=default, help="YAML file or shipped name")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any config field (repeatable); VALUE is read as YAML",
    )  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help="print it and exit")


def _add_train(stages: Any, stage: str, summary: str, load: Load, run: Run) -> None:
    sub = stages.add_parser(stage, help=summary, description=summary)
    _recipe_flags(sub, f"{stage}_cpu")
    sub.add_argument("--output-dir", help="where checkpoints and the final model go")
    sub.add_argument(
        "--resume", nargs="?", const="latest", metavar="CHECKPOINT",
        help="continue from CHECKPOINT, or alone: the newest one in the output dir",
    )  # fmt: skip
    sub.add_argument("--max-steps", type=int)
    sub.add_argument("--base-model", help="'' (SmolLM2 GGUF), a .gguf file or a HF dir")
    sub.add_argument("--init-adapter", help="a PEFT adapter to keep training")
    _command(sub, load, run)


def _add_systems(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", action="append", default=[], metavar="[NAME=]PATH",
        help="a merged or PEFT adapter directory, or a GGUF file (repeatable)")  # fmt: skip
    add("--gateway", action="append", default=[], metavar="[NAME=]URL",
        help="a running gateway's root URL (repeatable)")  # fmt: skip
    add("--model", help="model name sent to gateways (default: rlpa)")
    add("--api-key", help="gateway key with chat and admin scopes (or RLPA_EVAL_API_KEY)")
    add("--only", action="append", default=[], metavar="NAME",
        help="evaluate only this system of the recipe's and the flags' (repeatable)")  # fmt: skip
    add("--seed", type=int)
    add("--torch-threads", type=int, help="torch CPU threads (1 is fastest on a busy CPU)")
    add("--output-dir")
    add("--title")


def _add_eval(commands: Any) -> None:
    run = commands.add_parser("run", help="systems against simulated held-out users")
    _recipe_flags(run, None)
    _add_systems(run)
    run.add_argument("--users", type=int, help="how many held-out users")
    run.add_argument("--turns", type=int, help="turns per conversation (R)")
    run.add_argument("--profiles", help="JSONL of held-out profiles")
    run.add_argument("--change-at-turn", type=int, help="turn whose user message changes one")
    run.add_argument("--matcher", choices=MATCHERS)
    run.add_argument("--judge", choices=JUDGES)
    run.add_argument("--card", help='also write the eval card ({"stages": {system: metrics}})')
    _command(run, _load_eval_run, _run_eval)

    transfer = commands.add_parser(
        "transfer", help="systems on the hand-written transfer set (the notebooks always run)"
    )
    _recipe_flags(transfer, "transfer")  # greedy decoding: readings compared across runs
    transfer.add_argument("transfer", nargs="?", metavar="JSONL",
                          help=f"the users to play (default: {TRANSFER_V1.name})")  # fmt: skip
    _add_systems(transfer)
    transfer.add_argument("--transfer-users", type=int, help="the first N users (default: all)")
    _command(transfer, _load_eval_transfer, _run_eval)

    compare = commands.add_parser("compare", help="merge earlier results.json into one report")
    _recipe_flags(compare, None)
    compare.add_argument("results", nargs="+", metavar="RESULTS_JSON")
    compare.add_argument("--output-dir")
    compare.add_argument("--title")
    compare.add_argument("--card", help="also write the eval card here")
    _command(compare, _load_eval_compare, _run_eval)

    # Listed for --help; `main` hands `rlpa eval card ...` to the card's own entry point.
    commands.add_parser(
        "card", add_help=False, help="the model card: models/NAME/README.md and eval.json "
        "(training.evaluate.card; see `rlpa eval card --help`)",
    )  # fmt: skip
    commands.add_parser(
        "conflicts", add_help=False, help="replies against stored preferences, profile on and "
        "off (training.evaluate.conflicts; see `rlpa eval conflicts --help`)",
    )  # fmt: skip


def _add_export(parser: argparse.ArgumentParser) -> None:
    _recipe_flags(parser, None)
    parser.add_argument("--checkpoint", help="the final directory of an SFT or RL run")
    parser.add_argument("--out-dir")
    parser.add_argument("--base-model")
    parser.add_argument("--formats", help="comma-separated, from hf-merged,hf-adapter,gguf-lora")
    parser.add_argument("--eval-summary", help="a JSON eval card for rlpa.json")
    parser.add_argument("--gguf-dtype", choices=["f32", "f16"])
    parser.add_argument("--hf-adapter-dtype", choices=["f32", "f16"])
    _command(parser, _load_export, _run_export)


def _flags(args: argparse.Namespace, flags: Mapping[str, str]) -> dict[str, Any]:
    """The config fields the explicit flags this command has set."""
    return {field: getattr(args, flag) for flag, field in flags.items() if hasattr(args, flag)}


def _load(cls: type[Any], args: argparse.Namespace, flags: Mapping[str, Any]) -> Any:
    """`cls` from the recipe, the --set overrides and the flags' fields, in that order."""
    from training.recipe import load_config, parse_overrides

    overrides = parse_overrides(args.overrides)
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_config(cls, args.recipe, overrides)


def _load_sft(args: argparse.Namespace) -> Any:
    from training.config import SFTRunConfig

    return _load(SFTRunConfig, args, _flags(args, TRAIN_FLAGS))


def _run_sft(config: Any, args: argparse.Namespace) -> int:
    from training import sft

    print(f"final model: {sft.main(config)}")
    return 0


def _load_rl(args: argparse.Namespace) -> Any:
    from training.config import RLRunConfig

    return _load(RLRunConfig, args, _flags(args, TRAIN_FLAGS))


def _run_rl(config: Any, args: argparse.Namespace) -> int:
    from training import rl

    print(f"final model: {rl.main(config)}")
    return 0


def _named(spec: str) -> tuple[str, str]:
    name, sep, target = spec.partition("=")
    if sep and name and "/" not in name:
        return name, target
    return Path(spec.rstrip("/")).name or spec, spec


def _load_eval_run(args: argparse.Namespace) -> Any:
    """The EvalConfig, with the systems named by flags added to the recipe's, then `--only`."""
    from training.evaluate.config import EvalConfig

    config = _load(EvalConfig, args, _flags(args, EVAL_FLAGS))
    gateway = {key: value for key in ("model", "api_key") if (value := getattr(args, key))}
    specs = [{"name": n, "kind": "checkpoint", "path": p} for n, p in map(_named, args.checkpoint)]
    specs += [
        {"name": name, "kind": "gateway", "base_url": url, **gateway}
        for name, url in map(_named, args.gateway)
    ]
    config.systems = [*config.systems, *map(config.system, specs)]
    if args.only:
        names = {system.name for system in config.systems}
        if unknown := sorted(set(args.only) - names):
            raise ValueError(f"--only {', '.join(unknown)}: no such system (have {sorted(names)})")
        config.systems = [system for system in config.systems if system.name in args.only]
    return config


def _load_eval_transfer(args: argparse.Namespace) -> Any:
    config = _load_eval_run(args)  # the systems as `run` takes them, on the set's users
    config.transfer_path = config.transfer_path or str(TRANSFER_V1)
    return config


def _load_eval_compare(args: argparse.Namespace) -> Any:
    from training.evaluate.config import EvalConfig

    return _load(EvalConfig, args, _flags(args, EVAL_FLAGS))


def _run_eval(config: Any, args: argparse.Namespace) -> int:
    from training import evaluate
    from training.evaluate import report, transfer_report

    if args.eval_command == "compare":
        results, files = evaluate.compare(args.results, config.title, config.output_dir)
    else:
        results = evaluate.evaluate(config)
        files = {kind: Path(path) for kind, path in results["files"].items()}
    if getattr(args, "card", None):
        files["eval card"] = report.write_stage_card(results, args.card)
    transfer = args.eval_command == "transfer"
    print((transfer_report if transfer else report).markdown(results))
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0


def _load_export(args: argparse.Namespace) -> Any:
    from training.export.main import ExportConfig

    flags = {flag: getattr(args, flag) for flag in EXPORT_FLAGS}
    flags["formats"] = args.formats.split(",") if args.formats else None
    return _load(ExportConfig, args, flags)


def _run_export(config: Any, args: argparse.Namespace) -> int:
    from training.export.main import run_export

    for export_format, path in run_export(config).items():
        print(f"{export_format}: {path}")
    return 0


def _legacy_eval(argv: list[str]) -> list[str]:
    """`rlpa eval --FLAGS`, the form before the subcommands, mapped onto its subcommand (for one
    release): `--compare A B` is `compare A B`, `--transfer [JSONL]` is `transfer [JSONL]`, the
    rest is `run`."""
    if argv[:1] != ["eval"] or len(argv) < 2 or argv[1] in (*EVAL_COMMANDS, "-h", "--help"):
        return argv
    words = argv[1:]
    if "--compare" in words:
        command, words = "compare", [word for word in words if word != "--compare"]
    elif "--transfer" in words or any(word.startswith("--transfer=") for word in words):
        command = "transfer"
        words = [word.removeprefix("--transfer=") for word in words if word != "--transfer"]
    else:
        command = "run"
    new = ["eval", command, *words]
    print(
        f"rlpa eval without a subcommand is deprecated: read as `rlpa {' '.join(new)}`",
        file=sys.stderr,
    )
    return new


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Any]:
    """The arguments of a command (not `eval card`) and the config they load: what `main` runs."""
    args = build_parser().parse_args(_legacy_eval(list(argv)))
    return args, args.load(args)


def main(argv: Sequence[str] | None = None) -> int:
    words = _legacy_eval(list(sys.argv[1:] if argv is None else argv))
    if words[:2] == ["eval", "card"]:
        # The card's arguments are its own while training/evaluate/card.py is being extended.
        from training.evaluate import card

        return card.main(words[2:])
    if words[:2] == ["eval", "conflicts"]:
        from training.evaluate import conflicts

        return conflicts.main(words[2:])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(words)
    try:
        config = args.load(args)
    except (ValueError, FileNotFoundError) as error:
        named = (args.command, getattr(args, "stage", None), getattr(args, "eval_command", None))
        print(f"rlpa {' '.join(w for w in named if w)}: {error}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        from training.recipe import recipe_dict

        plain = json.loads(json.dumps(recipe_dict(config), default=str))
        print(yaml.safe_dump(plain, sort_keys=True), end="")
        return 0
    code: int = args.run(config, args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
