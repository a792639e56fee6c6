"""The parts of TRL that training/ leans on, checked by name so that an upgrade fails here, loudly,
before it fails (or silently misbehaves) inside a training run.

If one of these fails after a TRL upgrade: read the message, check the named code in the new TRL,
adapt training/sft.py, training/rl.py or training/rl_rollout.py, then update this file.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import trl
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer
from trl.trainer.utils import RepeatSampler

PINNED = "1.16.0"


def _require(condition: bool, what: str) -> None:
    if not condition:
        pytest.fail(f"TRL {trl.__version__} changed: {what}", pytrace=False)


def _params(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _source(function: Callable[..., Any]) -> str:
    return inspect.getsource(function)


def _defaults(config: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(config)}


def test_trl_is_the_pinned_version() -> None:
    _require(
        trl.__version__ == PINNED,
        f"training/ was written against trl=={PINNED}; run tests/training/test_trl_internals.py "
        "and the SFT/RL tests against the new version before moving the pin",
    )


def test_grpo_trainer_takes_a_rollout_func() -> None:
    params = _params(GRPOTrainer.__init__)
    for name in ("model", "reward_funcs", "args", "train_dataset", "processing_class",
                 "callbacks", "peft_config", "rollout_func"):  # fmt: skip
        _require(name in params, f"GRPOTrainer.__init__ has no `{name}` argument")


def test_grpo_calls_the_rollout_with_prompts_and_itself() -> None:
    source = _source(GRPOTrainer._generate)
    _require(
        "self.rollout_func(prompts, self)" in source,
        "GRPOTrainer._generate no longer calls rollout_func(prompts, trainer)",
    )
    for key in ('"prompt_ids"', '"completion_ids"', '"logprobs"'):
        _require(key in source, f"rollout_func's output no longer requires the key {key}")
    _require(
        "extra_fields" in source,
        "rollout_func's extra output keys are no longer forwarded (profile_score/response_score)",
    )


def test_grpo_forwards_rollout_columns_to_reward_functions() -> None:
    scoring = _source(GRPOTrainer._generate_and_score_completions)
    _require(
        "inp[key] = values[i]" in scoring,
        "extra fields from rollout_func are no longer merged into each reward function's inputs",
    )
    rewards = _source(GRPOTrainer._calculate_rewards)
    _require('reward_kwargs["log_metric"]' in rewards, "reward functions no longer get log_metric")
    _require(
        "reward_func(\n" in rewards and "completions=completions" in rewards,
        "reward functions are no longer called with completions=... and the columns",
    )


def test_grpo_single_turn_generator_keeps_its_signature() -> None:
    # training.rl_rollout.trainer_generate calls this private method for every state.
    params = _params(GRPOTrainer._generate_single_turn)
    _require(
        params[:5] == ["self", "prompt_ids", "images", "multimodal_fields", "num_generations"],
        f"GRPOTrainer._generate_single_turn's parameters are now {params}",
    )
    _require(
        "return completion_ids, logprobs" in _source(GRPOTrainer._generate_single_turn),
        "GRPOTrainer._generate_single_turn no longer returns (completion_ids, logprobs)",
    )


def test_grpo_groups_each_prompt_num_generations_times_in_order() -> None:
    sampler = _source(GRPOTrainer._get_train_sampler)
    _require(
        "mini_repeat_count=self.num_generations" in sampler,
        "the train sampler no longer repeats each prompt num_generations times",
    )
    _require(
        "shuffle=self.shuffle_dataset" in sampler,
        "the train sampler no longer honours shuffle_dataset (conversation turns need order)",
    )
    _require("shuffle" in _params(RepeatSampler.__init__), "RepeatSampler lost `shuffle`")


def test_grpo_reward_names_come_from_function_names() -> None:
    from trl.trainer.utils import get_callable_name

    from training.rl_rollout import profile, response

    _require(
        "get_callable_name(reward_funcs[i])" in _source(GRPOTrainer.__init__)
        and [get_callable_name(profile), get_callable_name(response)] == ["profile", "response"],
        "reward functions are no longer logged under their names (rewards/profile/mean)",
    )


def test_grpo_config_has_the_fields_recipes_use() -> None:
    defaults = _defaults(GRPOConfig)
    for name in ("num_generations", "max_completion_length", "temperature", "beta", "loss_type",
                 "generation_batch_size", "steps_per_generation", "shuffle_dataset", "use_vllm",
                 "vllm_mode", "vllm_gpu_memory_utilization", "scale_rewards"):  # fmt: skip
        _require(name in defaults, f"GRPOConfig has no field `{name}`")
    _require(
        defaults["remove_unused_columns"] is False,
        "GRPOConfig.remove_unused_columns no longer defaults to False",
    )


def test_sft_trainer_and_config_keep_what_sft_uses() -> None:
    params = _params(SFTTrainer.__init__)
    for name in ("model", "args", "train_dataset", "eval_dataset", "processing_class",
                 "callbacks", "peft_config"):  # fmt: skip
        _require(name in params, f"SFTTrainer.__init__ has no `{name}` argument")
    defaults = _defaults(SFTConfig)
    for name in ("completion_only_loss", "assistant_only_loss", "max_length", "bf16"):
        _require(name in defaults, f"SFTConfig has no field `{name}`")
    _require(
        defaults["completion_only_loss"] is None,
        "SFTConfig.completion_only_loss no longer defaults to None (= on for prompt/completion)",
    )


def test_sft_computes_the_loss_on_the_completion_of_prompt_completion_rows() -> None:
    _require(
        '"prompt" in dataset_sample and "completion" in dataset_sample'
        in _source(SFTTrainer.__init__),
        "SFTTrainer no longer turns completion_only_loss on for prompt/completion datasets",
    )
    prepare = _source(SFTTrainer._prepare_dataset)
    _require(
        "completion_mask" in prepare and "add_generation_prompt=True" in prepare,
        "SFTTrainer no longer masks the prompt (tokenised with add_generation_prompt) out of the "
        "loss",
    )
