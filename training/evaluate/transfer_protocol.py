"""The transfer-set protocol: each hand-written user talks to a system, and the store is read.

Per user: erase the user's id on the system (so it starts cold), play conversation 1 turn by
turn as an OpenAI client would (the growing history, with the replies the system gave), reading
the stored profile after every turn; then open conversation 2 as a new conversation (its first
message only, same user id) and read the profile after that turn. The rest of conversation 2 is
not played: only the profile after its first turn is scored (transfer.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.eval_data import TransferUser, load_transfer_set
from training.evaluate import transfer
from training.evaluate.agents import ChatAgent
from training.evaluate.config import EvalConfig

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


def collect_profiles(user: TransferUser, turns: Sequence[TransferTurn]) -> transfer.UserProfiles:
    return transfer.UserProfiles(
        user,
        [t.profile for t in turns if t.conversation == 1],
        next(t.profile for t in turns if t.conversation == 2),
        [transfer.Exchange(t.conversation, t.turn, t.user, t.reply) for t in turns],
    )


def run_system(
    agent: ChatAgent, users: Sequence[TransferUser], config: EvalConfig
) -> dict[str, Any]:
    """One system's entry in the report: its metrics with intervals and every user's run."""
    rows = []
    for index, user in enumerate(users, 1):
        turns = run_user(agent, user, f"{config.user_prefix}{user.id}")
        scored = transfer.user_metrics(collect_profiles(user, turns))
        rows.append((scored, turns))
        logger.info(
            "%s: transfer user %d/%d %s: F1 %s, stored %s",
            agent.name,
            index,
            len(users),
            user.id,
            None if scored.f1 is None else round(scored.f1, 2),
            turns[-2].profile,
        )
    summary = transfer.summarise(
        [scored for scored, _ in rows], resamples=config.bootstrap_resamples, seed=config.seed
    )
    return {
        "metrics": {name: None if e is None else e.to_dict() for name, e in summary.items()},
        "users": [
            {**scored.to_dict(), "turns": [asdict(t) for t in turns]} for scored, turns in rows
        ],
    }


def evaluate_transfer(config: EvalConfig) -> dict[str, Any]:
    """Every system of `config` on the transfer set; writes transfer.json and transfer.md."""
    import json

    from training.evaluate.agents import build_agent

    if not config.transfer_path:
        raise ValueError("no transfer set: set transfer_path (--transfer)")
    if not config.systems:
        raise ValueError("no systems to evaluate: pass --gateway URL (or list them in the recipe)")
    path = Path(config.transfer_path)
    users = load_transfer_set(path)[: config.transfer_users]
    systems = []
    for system in config.systems:
        logger.info("transfer set on %s: %d users", system.name, len(users))
        agent = build_agent(system, config.seed)
        try:
            systems.append(
                {"name": system.name, "kind": system.kind, **run_system(agent, users, config)}
            )
        finally:
            agent.close()
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
    }
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {kind: out / name for kind, name in FILES.items()}
    files["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    files["markdown"].write_text(transfer.markdown(results))
    return {**results, "files": {kind: str(p) for kind, p in files.items()}}
