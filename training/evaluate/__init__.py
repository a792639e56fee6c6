"""`rlpa eval`: run systems against simulated held-out users and report the paper's metrics.

    rlpa eval run --recipe eval_cpu --checkpoint sft=runs/sft/final --checkpoint rl=runs/rl/final
    rlpa eval run --recipe eval_cpu --gateway http://localhost:8000 --api-key $KEY --users 5
    rlpa eval run --recipe eval_card --card models/smollm2-135m-rlpa/eval.json
    rlpa eval compare runs/a/results.json runs/b/results.json --output-dir runs/a-vs-b
    rlpa eval transfer --gateway http://localhost:8000 --output-dir runs/transfer
    rlpa eval card models/smollm2-135m-rlpa --run SET:SETTING=TRANSFER_JSON ...   (card.py)

`run` writes results.json (every turn), summary.json, report.md and report.png to the output
directory; `--card` also writes a checkpoint's eval card ({"stages": {system: metrics}}).
`transfer [JSONL]` runs the hand-written transfer set (training/eval_data) instead of simulated
users and writes transfer.json and transfer.md (metrics with 95% intervals: transfer.py). The
model-free notebooks `echo` and `echo1` (baselines.py) always run beside the systems given, and
alone when none is: `rlpa eval transfer FILE` is an instant offline reading.
`--only NAME` runs one of the recipe's systems, so stages can run in parallel processes and
be joined with `compare`. Systems from flags are added to the recipe's. Metric conventions:
metrics.py. The command line is training/cli.py; here are the library functions it calls:
`evaluate(EvalConfig(...))` returns the results dict, `compare(paths, ...)` merges earlier ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.evaluate.config import EvalConfig, SystemConfig
from training.recipe import load_config

__all__ = ["EvalConfig", "SystemConfig", "compare", "evaluate"]

logger = logging.getLogger(__name__)


def evaluate(config: EvalConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Run every system in `config` on the same users (simulated ones, or the transfer set's
    when `transfer_path` is set); write and return the results."""
    if not isinstance(config, EvalConfig):
        config = load_config(EvalConfig, None, config)
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


def compare(
    paths: Sequence[str | Path], title: str, output_dir: str | Path
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run nothing: merge earlier results.json files into one report; (results, files written)."""
    from training.evaluate import report

    results = report.merge_results([report.load_results(path) for path in paths], title)
    return results, report.write_report(results, output_dir)
