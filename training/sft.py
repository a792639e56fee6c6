"""SFT warm start on TRL's SFTTrainer: teach the contract format before RL teaches the content.

The data are template conversations with the scripted user (training.dialogues), one
prompt/completion example per assistant turn. With prompt/completion data TRL computes the loss
on the completion only (`completion_only_loss`, on by default for that format); the completion
ends with the chat template's <|im_end|>, so the model also learns to stop. SmolLM2's chat
template has no {% generation %} markers, and whole conversations could not show the contract's
view anyway (only the latest assistant turn keeps its profile block), hence per-turn examples
rather than `assistant_only_loss`.

    python -c "from training import cli; cli.main(['train', 'sft', '--recipe', 'sft_cpu'])"
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from training.config import DialogueArgs, SFTRunConfig
from training.dialogues import sft_examples, training_profiles
from training.policy import jsonl_logger, load_policy, lora_config, run_training

if TYPE_CHECKING:
    from datasets import Dataset
    from trl import SFTTrainer

    from training.simulators import ScriptedUser


def scripted_user(config: DialogueArgs) -> ScriptedUser:
    """The scripted user a recipe's dialogue fields describe, with the training phrasings."""
    from training.simulators import ScriptedUser

    return ScriptedUser(
        change_at_turn=config.change_at_turn,
        share=config.reveal_share,
        opener_fact_share=config.opener_fact_share,
        natural_opener_share=config.natural_opener_share,
        phrasing_split="train",
        change_share=config.change_share,
        forget_share=config.forget_share,
        private_share=config.private_share,
        third_party_share=config.third_party_share,
        request_share=config.request_share,
        memory_share=config.memory_share,
    )


def build_dataset(config: SFTRunConfig, holdout: bool = False) -> Dataset:
    """Conversations with the training users; `holdout` uses the validation users instead."""
    from datasets import Dataset

    split = "validation" if holdout else "train"
    profiles = training_profiles(
        config.profiles_path, config.num_profiles, config.profile_seed, split
    )

    def make_user() -> ScriptedUser:
        return scripted_user(config)

    rows = sft_examples(
        profiles,
        make_user,
        config.max_turns,
        seed=config.seed,
        version=config.contract_version,
        carried_share=config.carried_share,
        target_wording=config.target_wording,
    )
    return Dataset.from_list(rows)


def build_trainer(config: SFTRunConfig) -> SFTTrainer:
    from trl import SFTTrainer

    model, tokenizer = load_policy(config)
    evaluating = config.eval_strategy != "no"
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=build_dataset(config),
        eval_dataset=build_dataset(config, holdout=True) if evaluating else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        # TrainingArguments declares output_dir optional; it always has a default.
        callbacks=[jsonl_logger(Path(cast(str, config.output_dir)) / "log.jsonl")],
    )


def main(config: SFTRunConfig) -> Path:
    """Train; returns the directory of the final adapter (or model) with its rlpa.json."""
    return run_training(build_trainer(config), config)
