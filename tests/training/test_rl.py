"""Multi-turn RL: the conversation rollout (best-of-n continues the chat) and two GRPO steps on a
tiny model, with real sampling and with scripted candidates of different quality."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from server.rlpa import parse_output, render_output
from training.data import generate_profiles
from training.rewards import LexicalMatcher, OfflineResponseJudge
from training.rl_rollout import ConversationRollout, RolloutLayoutError, Scorer, state_key
from training.simulators import ScriptedUser

BROKEN = "I think you might like pasta tonight."


def _encode(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


def good_or_broken(rollout: ConversationRollout, tokenizer: Any) -> Any:
    """A stand-in sampler: per state, candidate 0 breaks the format, the others write the traits
    revealed so far and a reply that asks a question (what the offline judge wants)."""

    def generate(prompt_ids: list[list[int]], n: int) -> tuple[list[list[int]], None]:
        states = {tuple(rollout._prompt_ids(c)): c for c in rollout.live.values()}
        outputs = []
        for ids in prompt_ids[::n]:
            conversation = states[tuple(ids)]
            traits = [t.text for t in conversation.user.revealed()]
            good = render_output(traits, f"Tell me more about that, turn {conversation.turns}?")
            outputs += [_encode(tokenizer, BROKEN)] + [_encode(tokenizer, good)] * (n - 1)
        return outputs, None

    return generate


def _rollout(tokenizer: Any, n: int = 2, max_turns: int = 3) -> ConversationRollout:
    scorer = Scorer(LexicalMatcher(), OfflineResponseJudge())
    profiles = generate_profiles(3, seed=2)
    rollout = ConversationRollout(profiles, ScriptedUser, scorer, tokenizer, n, max_turns)
    rollout.generate = good_or_broken(rollout, tokenizer)
    return rollout


def test_the_best_candidate_continues_the_conversation(smollm2_tokenizer: Any) -> None:
    rollout = _rollout(smollm2_tokenizer)

    first = rollout([state_key(0, 0)] * 2, trainer=None)
    assert first["profile_score"][0] == first["response_score"][0] == 0.0  # broken format
    assert first["profile_score"][1] == 1.0  # nothing revealed, nothing claimed
    assert first["response_score"][1] == 1.0
    conversation = rollout.live[0]
    assert [m["role"] for m in conversation.history] == ["user", "assistant", "user"]
    assert conversation.history[1]["content"] == "Tell me more about that, turn 0?"
    assert conversation.stored == []

    second = rollout([state_key(0, 1)] * 2, trainer=None)
    prompt = smollm2_tokenizer.decode(second["prompt_ids"][0])
    assert "<profile>" in prompt and "Tell me more about that, turn 0?" in prompt
    assert second["turn"] == [1.0, 1.0]
    assert conversation.turns == 2


def test_a_state_key_at_turn_zero_starts_a_new_conversation(smollm2_tokenizer: Any) -> None:
    rollout = _rollout(smollm2_tokenizer, max_turns=1)
    rollout([state_key(1, 0)] * 2, trainer=None)
    assert rollout.live[1].turns == 1 and rollout.live[1].history[-1]["role"] == "assistant"

    rollout([state_key(1, 0)] * 2, trainer=None)
    assert rollout.live[1].turns == 1  # a fresh conversation, one turn in


@pytest.mark.parametrize(
    "prompts",
    [
        [state_key(0, 0), state_key(1, 0)],  # a group split across two states
        [state_key(0, 0)] * 3,  # not whole groups
        [state_key(0, 0)] * 2 + [state_key(0, 1)] * 2,  # two turns of one conversation
    ],
)
def test_batches_that_are_not_whole_state_groups_are_refused(
    smollm2_tokenizer: Any, prompts: list[str]
) -> None:
    with pytest.raises(RolloutLayoutError):
        _rollout(smollm2_tokenizer)(prompts, trainer=None)


def test_states_are_laid_out_cohort_by_cohort_and_turn_by_turn() -> None:
    from training.rl import state_dataset

    rows = state_dataset(conversations=5, max_turns=2, cohort=2)["prompt"]
    expected = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (2, 1), (3, 1)]
    assert rows == [state_key(c, t) for c, t in expected]


def _config(tiny_llama_dir: Path, out: Path, **overrides: Any) -> Any:
    from training.config import RLRunConfig, load_config

    values = {"base_model": str(tiny_llama_dir), "output_dir": str(out), **overrides}
    return load_config(RLRunConfig, "rl_tiny", values)


def _logged(out: Path, key: str) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(line["step"], line[key]) for line in lines if key in line]


def test_two_rl_steps_sample_score_and_log_rewards(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from training import rl

    final = rl.main(_config(tiny_llama_dir, tmp_path / "rl"))

    for key in ("rewards/profile/mean", "rewards/response/mean", "rollout/best_reward"):
        logged = _logged(tmp_path / "rl", key)
        assert [step for step, _ in logged] == [1, 2], key
        assert all(math.isfinite(value) for _, value in logged)
    assert [turn for _, turn in _logged(tmp_path / "rl", "rollout/turn")] == [0.0, 1.0]
    assert (final / "rlpa.json").exists()


def test_rl_learns_from_better_candidates_and_resumes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import torch

    from training import rl
    from training.policy import run_training

    out = tmp_path / "rl-lora"
    config = _config(tiny_llama_dir, out, use_lora=True, learning_rate=1.0e-2)
    trainer = rl.build_trainer(config)
    rollout = trainer.rollout_func
    rollout.generate = good_or_broken(rollout, trainer.processing_class)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora" in n}
    run_training(trainer, config)

    rewards = [value for _, value in _logged(out, "reward")]
    assert rewards and all(0 < value < 2 for value in rewards)  # the two candidates differ
    assert all(loss != 0 for _, loss in _logged(out, "loss"))
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)

    resumed = _config(tiny_llama_dir, out, use_lora=True, max_steps=3)
    resumed.resume_from_checkpoint = "latest"
    trainer = rl.build_trainer(resumed)
    trainer.rollout_func.generate = good_or_broken(trainer.rollout_func, trainer.processing_class)
    final = run_training(trainer, resumed)
    assert trainer.state.global_step == 3
    assert [step for step, _ in _logged(out, "loss")] == [1, 2, 3]
    assert parse_output(BROKEN).format_ok is False
    assert (final / "adapter_config.json").exists()
