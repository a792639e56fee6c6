"""SFT warm start: template dialogues in the contract format, two steps on a tiny model, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from server.rlpa import (
    CONTRACT_VERSION,
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_V2,
    change_from_block,
    parse_output,
    render_output,
)
from server.rlpa.checkpoint import contract_version
from training.data import generate_profiles
from training.dialogues import ANSWERS, second_person, sft_examples, simulate_dialogue
from training.simulators import ScriptedUser
from training.simulators.phrasing import third_person


def test_dialogue_turns_are_contract_outputs_of_the_revealed_traits() -> None:
    profiles = generate_profiles(6, seed=3)
    non_empty = 0
    for index, profile in enumerate(profiles):
        user = ScriptedUser(change_at_turn=3)
        turns = simulate_dialogue(
            profile, user, seed=index, max_turns=6, version=1, target_wording="catalogue"
        )
        for turn in turns:
            parsed = parse_output(turn.completion)
            assert parsed.format_ok, turn.completion
            assert parsed.profile == turn.profile == [t.text for t in turn.revealed]
            # Revealed traits are true now: a changed preference shows its new value only.
            assert set(turn.profile) <= set(user.true_profile().texts())
            assert turn.completion == render_output(turn.profile, parsed.response)
            non_empty += bool(turn.profile)
    assert non_empty > 10, "the dialogues should reveal something to learn from"


def test_spoken_targets_store_what_the_user_said_in_their_own_words() -> None:
    spoken = 0
    for index, profile in enumerate(generate_profiles(8, seed=3)):
        user = ScriptedUser(opener_fact_share=1.0)
        for turn in simulate_dialogue(profile, user, seed=index, max_turns=5, version=1):
            parsed = parse_output(turn.completion)
            assert parsed.format_ok and parsed.profile == turn.profile, turn.completion
            assert len(turn.profile) == len(turn.revealed)
            for trait, text in zip(turn.revealed, turn.profile, strict=True):
                said = user.spoken(trait)
                assert said is not None
                own = third_person(said)
                assert text == (own or trait.text), (said, text)
                spoken += own is not None
    assert spoken > 10, "most catalogue sentences are plain first-person statements"


@pytest.mark.parametrize(
    ("said", "trait"),
    [
        ("I'm allergic to peanuts.", "is allergic to peanuts"),
        (
            "I am a nurse in Seattle and I love hiking.",
            "is a nurse in Seattle and they love hiking",
        ),
        (
            "My daughter is 6 and she loves dinosaurs.",
            "their daughter is 6 and she loves dinosaurs",
        ),
        ("I still live with my parents.", "still lives with their parents"),
        ("I don't eat meat.", "doesn't eat meat"),
        ("I watch a lot of romantic comedies.", "watches a lot of romantic comedies"),
        ("Waiting drives me nuts.", None),  # not a plain statement about the speaker
        ("We're not married, but it's serious.", None),
        ("Am I a nurse?", None),
    ],
)
def test_third_person_keeps_negations_and_whose_fact_it_is(said: str, trait: str | None) -> None:
    assert third_person(said) == trait


def test_dialogue_prompts_show_the_latest_profile_only() -> None:
    profile = generate_profiles(1, seed=5)[0]
    turns = list(simulate_dialogue(profile, ScriptedUser(), seed=0, max_turns=4, version=1))

    assert parse_output(turns[0].completion).profile == []  # cold start: nothing known yet
    for index, turn in enumerate(turns):
        assert turn.prompt[0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert turn.prompt[-1]["role"] == "user"
        assistants = [m["content"] for m in turn.prompt if m["role"] == "assistant"]
        assert len(assistants) == index
        if assistants:
            latest = parse_output(assistants[-1])
            assert latest.format_ok and latest.profile == turns[index - 1].profile
            assert all("<profile>" not in older for older in assistants[:-1])


def test_v2_targets_list_only_the_change_and_carry_the_stored_profile_forward() -> None:
    profiles = generate_profiles(8, seed=4)
    forgot = carried = openers = 0
    for index, profile in enumerate(profiles):
        user = ScriptedUser(change_at_turn=3, opener_fact_share=0.5)
        stored: list[str] | None = None
        for number, turn in enumerate(
            simulate_dialogue(profile, user, seed=index, max_turns=6, carried_share=0.5)
        ):
            parsed = parse_output(turn.completion)
            assert parsed.format_ok and parsed.profile is not None, turn.completion
            system = turn.prompt[0]["content"]
            assert system.startswith(SYSTEM_PROMPT_V2)
            if number == 0:
                stored = (
                    [
                        line[2:]
                        for line in system.split("What you know about this user:\n")[
                            -1
                        ].splitlines()
                    ]
                    if "What you know" in system
                    else []
                )
                carried += bool(stored)
                openers += bool(parse_output(turn.completion).profile)
            assert stored is not None
            change = change_from_block(parsed.profile)
            # The block never repeats what is stored; applied, it gives the teacher's profile.
            assert not {t.casefold() for t in change.add} & {t.casefold() for t in stored}
            assert change.apply(stored) == turn.profile
            # Only true traits, in the catalogue's words or the user's own.
            true = user.true_profile().traits
            own = {third_person(said) for t in true if (said := user.spoken(t))}
            assert set(turn.profile) <= {t.text for t in true} | own
            forgot += bool(change.remove)
            stored = turn.profile
    assert forgot and carried and openers, (forgot, carried, openers)


def test_sft_examples_are_trl_prompt_completion_rows() -> None:
    rows = sft_examples(generate_profiles(2, seed=1), ScriptedUser, max_turns=3)

    assert len(rows) == 6
    assert rows[0]["completion"][0]["role"] == "assistant"
    assert {m["role"] for m in rows[-1]["prompt"]} == {"system", "user", "assistant"}


@pytest.mark.parametrize(
    ("trait", "said"),
    [
        ("works as a nurse", "you work as a nurse"),
        ("is vegan", "you're vegan"),
        ("has a dog", "you have a dog"),
        ("often watches documentaries", "you often watch documentaries"),
        ("helps care for their elderly mother", "you help care for your elderly mother"),
        ("doesn't drink alcohol", "you don't drink alcohol"),
    ],
)
def test_second_person_addresses_the_user(trait: str, said: str) -> None:
    assert second_person(trait) == said


def _config(tiny_llama_dir: Path, out: Path, **overrides: Any) -> Any:
    from training.config import SFTRunConfig, load_config

    values = {"base_model": str(tiny_llama_dir), "output_dir": str(out), **overrides}
    return load_config(SFTRunConfig, "sft_tiny", values)


def _logged(out: Path, key: str) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(line["step"], line[key]) for line in lines if key in line]


def test_two_sft_steps_log_a_loss_and_change_the_weights(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    import torch

    from training import sft
    from training.policy import run_training

    config = _config(tiny_llama_dir, tmp_path / "sft")
    trainer = sft.build_trainer(config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    final = run_training(trainer, config)

    losses = _logged(tmp_path / "sft", "loss")
    assert [step for step, _ in losses] == [1, 2]
    assert all(math.isfinite(loss) and loss > 0 for _, loss in losses)
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)
    # Loss on the completion only: every example's prompt is masked out of the labels.
    for labels in trainer.train_dataset["labels"]:
        assert labels[0] == -100 and labels[-1] != -100
    card = json.loads((final / "rlpa.json").read_text())
    assert card["contract_version"] == CONTRACT_VERSION
    assert card["format"] == "hf-merged"


def test_lora_sft_resumes_from_its_last_checkpoint(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from training import sft

    out = tmp_path / "lora"
    first = sft.main(_config(tiny_llama_dir, out, use_lora=True))
    assert (out / "checkpoint-2").is_dir()
    # Every checkpoint carries its contract: without rlpa.json it would be read as contract 1.
    assert contract_version(out / "checkpoint-2") == CONTRACT_VERSION == contract_version(first)
    assert (first / "adapter_config.json").exists()

    resumed = _config(tiny_llama_dir, out, use_lora=True, max_steps=3)
    resumed.resume_from_checkpoint = "latest"
    sft.main(resumed)

    # Steps 1 and 2 came from the checkpoint; only step 3 ran again.
    assert [step for step, _ in _logged(out, "loss")] == [1, 2, 3]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_a_first_message_in_one_run_teaches_each_fact_alone_without_the_request() -> None:
    """ "Hi! I'm a nurse and I love hiking, so any ideas?" -> two traits, neither carrying the
    request or the other fact, and the teacher still answers the request."""
    pairs = answered = 0
    for index, profile in enumerate(generate_profiles(30, seed=5)):
        user = ScriptedUser(opener_fact_share=1.0, natural_opener_share=1.0)
        first = next(iter(simulate_dialogue(profile, user, seed=index, max_turns=1)))
        message = first.prompt[-1]["content"]
        parsed = parse_output(first.completion)
        assert parsed.format_ok and first.revealed, message
        traits = [line for line in parsed.profile if not line.startswith("forget:")]
        assert len(traits) == len(first.revealed) in (1, 2), (message, traits)
        for trait in traits:
            assert "?" not in trait and " so " not in trait, (message, trait)
        pairs += len(traits) == 2 and " and " in message
        answered += any(a in parsed.response for ans in ANSWERS.values() for a in ans)
    assert pairs >= 8, "about two in three such first messages state two facts"
    assert answered == 30, "the teacher answers the request wherever it sits in the message"
