"""The evaluation protocol: held-out users x a simulated user x R turns, scored every turn.

Every turn the simulated user speaks, the system replies and states its profile, and two scores
are taken: profile F1 against the user's true profile *as it is now* (it moves after a preference
change), and the response score. The LLM judge is shown the full true profile, because the paper
scores each reply against the true persona, not against the system's own inference as the
training reward does; the offline judge checks the reply against what the user has revealed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from training.components import make_judge, make_matcher, make_simulator
from training.data.profiles import Profile
from training.evaluate.agents import ChatAgent
from training.evaluate.config import EvalConfig
from training.rewards import Matcher, ResponseJudge
from training.rewards.profile import profile_f1
from training.simulators import UserSimulator

logger = logging.getLogger(__name__)


@dataclass
class TurnRecord:
    turn: int  # 1-based
    user: str
    reply: str
    inferred: list[str] | None
    true_profile: list[str]
    revealed: list[str]
    profile_f1: float
    response_score: float


@dataclass
class Conversation:
    user_id: str
    profile_id: str
    turns: list[TurnRecord]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_conversation(
    agent: ChatAgent,
    simulator: UserSimulator,
    profile: Profile,
    *,
    user_id: str,
    turns: int,
    seed: int,
    matcher: Matcher,
    judge: ResponseJudge,
    change_at_turn: int | None = None,
) -> Conversation:
    agent.reset(user_id)
    simulator.start(profile, seed)
    history: list[dict[str, str]] = []
    records: list[TurnRecord] = []
    for k in range(1, turns + 1):
        if k == change_at_turn:
            simulator.change_preference()  # announced in the reply that follows
        message = simulator.reply(history)
        history.append({"role": "user", "content": message})
        reply, inferred = agent.turn(user_id, history)
        true = simulator.true_profile().texts()
        revealed = [trait.text for trait in simulator.revealed()]
        records.append(
            TurnRecord(
                turn=k,
                user=message,
                reply=reply,
                inferred=inferred,
                true_profile=true,
                revealed=revealed,
                profile_f1=profile_f1(inferred or [], true, matcher),
                response_score=judge.score(reply, history, revealed, true),
            )
        )
        history.append({"role": "assistant", "content": reply})
    return Conversation(user_id, profile.id, records)


def run_system(
    agent: ChatAgent,
    profiles: Sequence[Profile],
    simulator: UserSimulator,
    matcher: Matcher,
    judge: ResponseJudge,
    config: EvalConfig,
) -> list[Conversation]:
    """Every profile once; user i gets seed `config.seed + i` with every system, so systems
    meet the same simulated users (as far as their replies let the users stay the same)."""
    conversations = []
    for index, profile in enumerate(profiles):
        conversation = run_conversation(
            agent,
            simulator,
            profile,
            user_id=f"{config.user_prefix}{profile.id}",
            turns=config.turns,
            seed=config.seed + index,
            matcher=matcher,
            judge=judge,
            change_at_turn=config.change_at_turn,
        )
        conversations.append(conversation)
        f1s = [round(t.profile_f1, 2) for t in conversation.turns]
        logger.info("%s: user %d/%d, F1 by turn %s", agent.name, index + 1, len(profiles), f1s)
    return conversations


def load_eval_profiles(config: EvalConfig) -> list[Profile]:
    from training.data import load_profiles
    from training.dialogues import training_profiles

    if config.split == "all":
        if not config.profiles_path:
            raise ValueError('split "all" needs a profiles_path: generated users are split')
        profiles = load_profiles(config.profiles_path)
    else:
        # The very function training draws its users with, so the test split cannot drift.
        profiles = training_profiles(
            config.profiles_path, config.num_profiles, config.profile_seed, config.split
        )
    chosen = profiles if config.users is None else profiles[: config.users]
    if not chosen:
        raise ValueError("no profiles to evaluate on")
    return chosen


def build_simulator(config: EvalConfig) -> UserSimulator:
    if config.simulator == "llm":
        return make_simulator("llm", config.endpoint())()
    # Held-out users say their traits in the phrasings training never used.
    held_out = config.split in ("validation", "test")
    return make_simulator(
        "scripted",
        phrasing_split="test" if held_out else None,
        opener_fact_share=config.opener_fact_share,
    )()


def build_matcher(config: EvalConfig) -> Matcher:
    return make_matcher(config.matcher, config.endpoint(), config.matcher_threshold)


def build_judge(config: EvalConfig) -> ResponseJudge:
    return make_judge(config.judge, config.endpoint())
