"""`rlpa eval`: run systems against simulated held-out users and report the paper's metrics.

    rlpa eval --recipe eval_cpu --checkpoint sft=runs/sft/final --checkpoint rl=runs/rl/final
    rlpa eval --recipe eval_cpu --gateway http://localhost:8000 --api-key $KEY --users 5
    rlpa eval --compare runs/a/results.json runs/b/results.json --output-dir runs/a-vs-b
    rlpa eval --recipe eval_card --card models/smollm2-135m-rlpa/eval.json
    rlpa eval --transfer --gateway http://localhost:8000 --output-dir runs/transfer

Writes results.json (every turn), summary.json, report.md and report.png to the output
directory; `--card` also writes a checkpoint's eval card ({"stages": {system: metrics}}).
`--transfer [JSONL]` runs the hand-written transfer set (training/eval_data) instead of simulated
users and writes transfer.json and transfer.md (metrics with 95% intervals: transfer.py). The
model-free notebooks `echo` and `echo1` (baselines.py) always run beside the systems given, and
alone when none is: `rlpa eval --transfer FILE` is an instant offline reading.
`--only NAME` runs one of the recipe's systems, so stages can run in parallel processes and
be joined with `--compare`. Systems from flags are added to the recipe's. Metric conventions:
metrics.py.
Programmatic use: `evaluate(EvalConfig(...))` returns the results dict.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.eval_data import TRANSFER_V1
from training.evaluate.config import EndpointConfig, EvalConfig, SystemConfig

__all__ = ["EndpointConfig", "EvalConfig", "SystemConfig", "evaluate", "main", "parse_config"]

logger = logging.getLogger(__name__)


def evaluate(config: EvalConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run every system in `config` on the same users (simulated ones, or the transfer set's
    when `transfer_path` is set); write and return the results."""
    if not isinstance(config, EvalConfig):
        config = EvalConfig.from_dict(config)
    if config.transfer_path:
        from training.evaluate.transfer_protocol import evaluate_transfer

        return evaluate_transfer(config)
    from server.rlpa import CONTRACT_VERSION
    from training.evaluate import protocol, report
    from training.evaluate.agents import build_agent

    if not config.systems:
        raise ValueError("no systems to evaluate: list them in the recipe or pass --checkpoint")
    profiles = protocol.load_eval_profiles(config)
    simulator = protocol.build_simulator(config)
    matcher, judge = protocol.build_matcher(config), protocol.build_judge(config)
    systems = []
    with _torch_threads(config.torch_threads):
        for system in config.systems:
            logger.info(
                "evaluating %s: %d users x %d turns", system.name, len(profiles), config.turns
            )
            agent = build_agent(system, config.seed)
            try:
                conversations = protocol.run_system(
                    agent, profiles, simulator, matcher, judge, config
                )
            finally:
                agent.close()
            systems.append(report.system_result(system.name, system.kind, conversations))
    results = {
        "title": config.title,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "contract_version": CONTRACT_VERSION,
        "config": config.to_dict(),
        "systems": systems,
    }
    files = report.write_report(results, config.output_dir)
    return {**results, "files": {kind: str(path) for kind, path in files.items()}}


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's CPU threads for the run, and put them back: callers (tests) share the process."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlpa eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--recipe", "--config", help="YAML file (or shipped name) of EvalConfig fields"
    )
    add = parser.add_argument
    add(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="a merged or PEFT adapter directory, or a GGUF file (repeatable)",
    )
    add(
        "--gateway",
        action="append",
        default=[],
        metavar="[NAME=]URL",
        help="a running gateway's root URL (repeatable)",
    )
    add("--model", help="model name sent to gateways (default: rlpa)")
    add("--api-key", help="gateway key with chat and admin scopes (or RLPA_EVAL_API_KEY)")
    add("--users", type=int, help="how many held-out users")
    add("--turns", type=int, help="turns per conversation (R)")
    add("--seed", type=int)
    add("--torch-threads", type=int, help="torch CPU threads (1 is fastest on a busy CPU)")
    add("--profiles", dest="profiles_path", help="JSONL of held-out profiles")
    add("--change-at-turn", type=int, help="turn whose user message changes a preference")
    add("--matcher", choices=["lexical", "embedding", "llm", "catalogue"])
    add("--judge", choices=["offline", "llm", "eval"])
    add("--output-dir")
    add("--title")
    add(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="evaluate only this system of the recipe's and the flags' (repeatable)",
    )
    add(
        "--transfer",
        nargs="?",
        const=str(TRANSFER_V1),
        dest="transfer_path",
        metavar="JSONL",
        help="run the hand-written transfer set (default: transfer_v1) instead of simulated\n"
        "users; without --recipe, with the `transfer` recipe (greedy decoding); the\n"
        "notebooks echo and echo1 always run too (alone when no system is given)",
    )
    add("--transfer-users", type=int, help="the first N transfer-set users (default: all)")
    add("--card", help='also write the eval card ({"stages": {system: metrics}}) here')
    add(
        "--compare",
        nargs="+",
        metavar="RESULTS_JSON",
        help="run nothing: merge earlier results.json files into one report",
    )
    return parser


def _named(spec: str) -> tuple[str, str]:
    name, sep, target = spec.partition("=")
    if sep and name and "/" not in name:
        return name, target
    return Path(spec.rstrip("/")).name or spec, spec


def parse_config(argv: list[str] | None = None) -> tuple[EvalConfig, list[str]]:
    """The config from the recipe and flags (flags win), and any results files to compare."""
    return config_from_args(vars(build_parser().parse_args(argv)))


def config_from_args(args: dict[str, Any]) -> tuple[EvalConfig, list[str]]:
    """`parse_config` on arguments already parsed (it consumes them)."""
    values: dict[str, Any] = {}
    recipe = args.pop("recipe")
    if recipe is None and args.get("transfer_path"):
        # Transfer and dev readings are compared across runs and sessions: greedy, like the card's.
        recipe = "transfer"
    if recipe:
        from training.evaluate.config import load_recipe

        values.update(load_recipe(recipe))
    compare = args.pop("compare") or []
    only = set(args.pop("only"))
    args.pop("card", None)
    checkpoints, gateways = args.pop("checkpoint"), args.pop("gateway")
    gateway_options = {k: v for k in ("model", "api_key") if (v := args.pop(k)) is not None}
    values.update({key: value for key, value in args.items() if value is not None})
    systems = list(values.get("systems") or [])
    for spec in checkpoints:
        name, path = _named(spec)
        systems.append({"name": name, "kind": "checkpoint", "path": path})
    for spec in gateways:
        name, url = _named(spec)
        systems.append({"name": name, "kind": "gateway", "base_url": url, **gateway_options})
    if only:
        names = {str(system["name"]) for system in systems}
        if unknown := sorted(only - names):
            raise ValueError(f"--only {', '.join(unknown)}: no such system (have {sorted(names)})")
        systems = [system for system in systems if system["name"] in only]
    values["systems"] = systems
    return EvalConfig.from_dict(values), compare


def main(argv: list[str] | EvalConfig | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    card_path: str | None = None
    if isinstance(argv, EvalConfig):
        config, compare = argv, list[str]()
    else:
        words = list(argv) if argv is not None else None
        if words and words[0] == "eval":  # tolerate a dispatcher that passes its own word on
            words = words[1:]
        args = vars(build_parser().parse_args(words))
        card_path = args.pop("card")
        config, compare = config_from_args(args)
    from training.evaluate import report

    if config.transfer_path:
        if compare or card_path:
            raise ValueError("--compare and --card do not apply to --transfer")
        from training.evaluate import transfer_report

        results = evaluate(config)
        print(transfer_report.markdown(results))
        for kind, path in results["files"].items():
            print(f"{kind}: {path}")
        return 0
    if compare:
        runs = [report.load_results(path) for path in compare]
        results = report.merge_results(runs, config.title)
        files = report.write_report(results, config.output_dir)
    else:
        results = evaluate(config)
        files = {kind: Path(path) for kind, path in results["files"].items()}
    if card_path:
        files["eval card"] = report.write_stage_card(results, card_path)
    print(report.markdown(results))
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0
