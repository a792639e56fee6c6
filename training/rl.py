"""Multi-turn RL, RLPA style, on TRL's GRPOTrainer.

The paper runs PPO with a critic; GRPO needs no critic and its group-relative advantage is exactly
RLPA's "n candidates per state": each state is one GRPO prompt with `num_generations` = n. The
conversations themselves are rolled out inside GRPO by `training.rl_rollout.ConversationRollout`
(best-of-n continues the chat, the simulated user answers, up to `max_turns` turns).

The dataset is only a schedule of state keys. Conversations run in cohorts: one generation batch
holds one turn of every conversation of a cohort, turn 0 of all, then turn 1 of all, and so on,
so a state's history is always rolled out before the state is asked for, and a batch never holds
two turns of one conversation.

    python -c "from training import cli; cli.main(['train', 'rl', '--recipe', 'rl_cpu'])"
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from training.components import make_judge, make_matcher, make_simulator
from training.config import RLRunConfig
from training.dialogues import training_profiles
from training.policy import jsonl_logger, load_policy, lora_config, run_training
from training.rl_rollout import ConversationRollout, Generate, Scorer, profile, response, state_key
from training.simulators.base import UserSimulator

if TYPE_CHECKING:
    from datasets import Dataset
    from trl import GRPOTrainer


def state_dataset(conversations: int, max_turns: int, cohort: int) -> Dataset:
    """State keys, cohort by cohort, turn by turn; leftover conversations (fewer than a cohort)
    are left out, since a partial cohort would put two turns of one conversation in a batch."""
    from datasets import Dataset

    usable = conversations - conversations % cohort
    if usable == 0:
        raise ValueError(f"{conversations} conversations cannot fill one cohort of {cohort}")
    rows = [
        {"prompt": state_key(index, turn)}
        for start in range(0, usable, cohort)
        for turn in range(max_turns)
        for index in range(start, start + cohort)
    ]
    return Dataset.from_list(rows)


def cohort_size(config: RLRunConfig) -> int:
    """Conversations per generation batch (each gives one state of n candidates)."""
    # GRPOConfig declares these optional; RLRunConfig defaults num_generations and GRPOConfig's
    # __post_init__ fills the other two.
    n, per_process = cast(int, config.num_generations), config.per_device_train_batch_size
    steps = cast(int, config.steps_per_generation)
    if (per_process * steps) % n:
        raise ValueError(
            f"per_device_train_batch_size * steps_per_generation ({per_process} * "
            f"{config.steps_per_generation}) must be a multiple of num_generations ({n}), so "
            "that each process holds whole groups of one conversation state"
        )
    return cast(int, config.generation_batch_size) // n


def endpoint_pool(config: RLRunConfig) -> Executor:
    """The run's one bounded pool for endpoint calls (LLM matcher, judge and users), so a
    batch's requests overlap instead of queueing; threads start on first use, so an offline run
    starts none."""
    if config.endpoint_concurrency < 1:
        raise ValueError("endpoint_concurrency must be at least 1")
    return ThreadPoolExecutor(config.endpoint_concurrency, thread_name_prefix="rlpa-endpoint")


def make_scorer(config: RLRunConfig, pool: Executor | None = None) -> Scorer:
    if config.profile_target not in ("revealed", "true"):
        raise ValueError("profile_target must be 'revealed' or 'true'")
    if config.matcher == "catalogue":
        raise ValueError("the catalogue matcher measures; it is not a training reward")
    if config.judge == "eval":
        raise ValueError("the eval judge measures; it is not a training reward")
    matcher = make_matcher(config.matcher, config.endpoint())
    judge = make_judge(config.judge, config.endpoint())
    return Scorer(matcher, judge, config.profile_target, pool=pool)


def make_user(config: RLRunConfig) -> Callable[[], UserSimulator]:
    if config.simulator == "llm":
        return make_simulator("llm", config.endpoint(), share=config.reveal_share)
    return make_simulator(
        config.simulator,
        share=config.reveal_share,
        opener_fact_share=config.opener_fact_share,
        natural_opener_share=config.natural_opener_share,
        phrasing_split="train",
    )


def build_trainer(config: RLRunConfig, generate: Generate | None = None) -> GRPOTrainer:
    """The GRPOTrainer with the conversation rollout; `generate` replaces sampling (tests)."""
    from trl import GRPOTrainer

    if config.shuffle_dataset:
        raise ValueError("shuffle_dataset must be False: conversation turns must stay in order")
    model, tokenizer = load_policy(config)
    tokenizer.padding_side = "left"  # GRPO left-pads prompts
    profiles = training_profiles(config.profiles_path, config.num_profiles, config.profile_seed)
    pool = endpoint_pool(config)
    rollout = ConversationRollout(
        profiles,
        make_user(config),
        make_scorer(config, pool),
        tokenizer,
        num_generations=cast(int, config.num_generations),
        max_turns=config.max_turns,
        seed=config.seed,
        generate=generate,
        change_at_turn=config.change_at_turn,
        version=config.contract_version,
        carried_share=config.carried_share,
        pool=pool,
    )
    return GRPOTrainer(
        model=model,
        # TRL asks for Callable[..., list[float | None]]; ours return list[float], which a list's
        # invariance keeps from matching.
        reward_funcs=cast(Any, [profile, response]),
        args=config,
        train_dataset=state_dataset(len(profiles), config.max_turns, cohort_size(config)),
        processing_class=tokenizer,
        peft_config=lora_config(config),
        rollout_func=rollout,
        callbacks=[jsonl_logger(Path(cast(str, config.output_dir)) / "log.jsonl")],
    )


def main(config: RLRunConfig) -> Path:
    """Train; returns the directory of the final adapter (or model) with its rlpa.json."""
    return run_training(build_trainer(config), config)
