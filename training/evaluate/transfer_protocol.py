"""The transfer-set protocol: each hand-written user talks to a system, and the store is read.

Per user: erase the user's id on the system (so it starts cold), play conversation 1 turn by
turn as an OpenAI client would (the growing history, with the replies the system gave), reading
the stored profile after every turn; then open conversation 2 as a new conversation (its first
message only, same user id) and read the profile after that turn. The rest of conversation 2 is
not played: only the profile after its first turn is scored (transfer.py).

The two notebooks (`echo`, `echo1`: baselines.py) always run beside the systems asked for, on
the same users, and each other system's per-user difference to each notebook is reported with
a paired interval ("against the notebooks"). With no system asked for, only they run: an
instant offline reading of a transfer file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.eval_data import TransferUser, load_transfer_set
from training.evaluate import transfer, transfer_report
from training.evaluate.agents import ChatAgent
from training.evaluate.baselines import BASELINES
from training.evaluate.config import EvalConfig, SystemConfig

logger = logging.getLogger(__name__)

FILES = {"json": "transfer.json", "markdown": "transfer.md"}


@dataclass
class TransferTurn:
    conversation: int  # 1 or 2
    turn: int  # 1-based, within its conversation
    user: str
    reply: str
    profile: list[str]  # stored after this turn


def run_user(agent: ChatAgent, user: TransferUser, user_id: str) -> list[TransferTurn]:
    agent.reset(user_id)
    turns: list[TransferTurn] = []
    history: list[dict[str, str]] = []
    for k, message in enumerate(user.conversations[0], 1):
        history.append({"role": "user", "content": message})
        reply, profile = agent.turn(user_id, history)
        history.append({"role": "assistant", "content": reply})
        turns.append(TransferTurn(1, k, message, reply, list(profile or [])))
    opener = user.conversations[1][0]
    reply, profile = agent.turn(user_id, [{"role": "user", "content": opener}])
    turns.append(TransferTurn(2, 1, opener, reply, list(profile or [])))
    return turns


def collect_profiles(
    user: TransferUser, turns: Sequence[TransferTurn], *, replies: bool = True
) -> transfer.UserProfiles:
    """`replies`: whether the system replies at all (a notebook does not: no reply is scored)."""
    return transfer.UserProfiles(
        user,
        [t.profile for t in turns if t.conversation == 1],
        next(t.profile for t in turns if t.conversation == 2),
        [transfer.Exchange(t.conversation, t.turn, t.user, t.reply) for t in turns if replies],
    )


Scored = list[tuple[transfer.UserMetrics, list[TransferTurn]]]


def run_system(
    agent: ChatAgent, users: Sequence[TransferUser], config: EvalConfig, *, replies: bool = True
) -> Scored:
    """Every user's metrics and turns on one system."""
    rows: Scored = []
    for index, user in enumerate(users, 1):
        turns = run_user(agent, user, f"{config.user_prefix}{user.id}")
        scored = transfer.user_metrics(collect_profiles(user, turns, replies=replies))
        rows.append((scored, turns))
        logger.info(
            "%s: transfer user %d/%d %s: one-to-one F1 %s, stored %s",
            agent.name,
            index,
            len(users),
            user.id,
            None if scored.f1_one_to_one is None else round(scored.f1_one_to_one, 2),
            turns[-2].profile,
        )
    return rows


def system_entry(system: SystemConfig, rows: Scored, config: EvalConfig) -> dict[str, Any]:
    """One system's entry in the report: its metrics with intervals, the pooled counts, and
    every user's metrics and turns."""
    per_user = [scored for scored, _ in rows]
    summary = transfer.summarise(per_user, resamples=config.bootstrap_resamples, seed=config.seed)
    return {
        "name": system.name,
        "kind": system.kind,
        "metrics": {name: None if e is None else e.to_dict() for name, e in summary.items()},
        "counts": transfer.counts(per_user),
        "users": [
            {**scored.to_dict(), "turns": [asdict(t) for t in turns]} for scored, turns in rows
        ],
    }


def with_notebooks(systems: Sequence[SystemConfig]) -> list[SystemConfig]:
    """The notebooks first (each unless a system of its kind is listed already), then `systems`."""
    kinds = {s.kind for s in systems}
    taken = {s.name for s in systems if s.kind not in BASELINES} & set(BASELINES)
    if taken:
        raise ValueError(f"system name(s) {sorted(taken)} are the notebooks': choose another")
    notebooks = [SystemConfig(name=kind, kind=kind) for kind in BASELINES if kind not in kinds]
    return [*notebooks, *systems]


def against_notebooks(
    scored: Mapping[str, Sequence[transfer.UserMetrics]],
    kinds: Mapping[str, str],
    config: EvalConfig,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{system: {notebook: {metric: paired difference}}} for every system that is not one."""
    notebooks = [name for name, kind in kinds.items() if kind in BASELINES]
    return {
        name: {
            notebook: {
                metric: None if e is None else e.to_dict()
                for metric, e in transfer.paired_differences(
                    scored[name],
                    scored[notebook],
                    resamples=config.bootstrap_resamples,
                    seed=config.seed,
                ).items()
            }
            for notebook in notebooks
        }
        for name, kind in kinds.items()
        if kind not in BASELINES
    }


def evaluate_transfer(config: EvalConfig) -> dict[str, Any]:
    """Every system of `config`, and the notebooks, on the transfer set; writes transfer.json
    and transfer.md."""
    import json

    from training.evaluate.agents import build_agent

    if not config.transfer_path:
        raise ValueError("no transfer set: set transfer_path (--transfer)")
    path = Path(config.transfer_path)
    users = load_transfer_set(path)[: config.transfer_users]
    systems, scored = [], {}
    for system in with_notebooks(config.systems):
        logger.info("transfer set on %s: %d users", system.name, len(users))
        agent = build_agent(system, config.seed)
        try:
            rows = run_system(agent, users, config, replies=system.kind not in BASELINES)
        finally:
            agent.close()
        systems.append(system_entry(system, rows, config))
        scored[system.name] = [metrics for metrics, _ in rows]
    kinds = {entry["name"]: entry["kind"] for entry in systems}
    results = {
        "title": config.title,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "transfer_set": {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "users": len(users),
        },
        "config": config.to_dict(),
        "systems": systems,
        "against_notebooks": against_notebooks(scored, kinds, config),
    }
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {kind: out / name for kind, name in FILES.items()}
    files["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    files["markdown"].write_text(transfer_report.markdown(results))
    return {**results, "files": {kind: str(p) for kind, p in files.items()}}
