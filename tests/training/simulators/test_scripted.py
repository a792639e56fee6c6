from __future__ import annotations

import math

from training.data import OTHER, Profile, Trait, generate_profiles
from training.data.catalogue import KINDS
from training.simulators import ScriptedUser, UserSimulator
from training.simulators.scripted import OPENERS
from training.text import sentences

NURSE = Trait("occupation", "nurse", "works as a nurse")
VEGAN = Trait("diet", "vegan", "is vegan")
SEATTLE = Trait("location", "Seattle", "lives in Seattle")
PROFILE = Profile(
    "p1",
    [
        NURSE,
        VEGAN,
        SEATTLE,
        Trait("pets", "dog", "has a dog"),
        Trait("music", "jazz", "listens to jazz"),
        Trait("sport", "yoga", "does yoga"),
        Trait("marital", "married", "is married"),
        Trait("tech", "early adopter", "buys new gadgets early"),
        Trait("drink", "tea", "prefers tea"),
        Trait("travel", "camping", "goes camping"),
    ],
)


def talk(user: UserSimulator, assistant_turns: list[str]) -> list[str]:
    """The user's messages when the assistant says each of `assistant_turns` in order."""
    history: list[dict[str, str]] = []
    said = []
    for reply in ["", *assistant_turns]:
        if reply:
            history.append({"role": "assistant", "content": reply})
        message = user.reply(history)
        history.append({"role": "user", "content": message})
        said.append(message)
    return said


def test_opening_message_reveals_nothing_personal() -> None:
    for seed in range(20):
        user = ScriptedUser()
        user.start(PROFILE, seed)

        assert user.reply([]) in OPENERS
        assert user.revealed() == []


def test_reveals_a_trait_the_assistant_makes_relevant() -> None:
    user = ScriptedUser()
    user.start(PROFILE, seed=0)

    _, answer = talk(user, ["What do you usually eat for dinner? Any food you avoid?"])

    assert VEGAN in user.revealed()
    assert any(sentence in answer for sentence in KINDS["diet"].value("vegan").first)


def test_says_little_when_nothing_is_relevant_early_on() -> None:
    user = ScriptedUser()
    user.start(PROFILE, seed=1)

    _, answer = talk(user, ["Okay."])

    assert user.revealed() == []
    assert len(answer.split()) <= 6


def test_never_reveals_more_than_fifteen_percent_per_reply() -> None:
    probing = "Tell me about your job, food, city, pets, music, sport, partner, gadgets and trips?"
    limit = math.ceil(0.15 * len(PROFILE.traits))
    for seed in range(10):
        user = ScriptedUser()
        user.start(PROFILE, seed)
        history = [{"role": "user", "content": user.reply([])}]
        for turn in range(8):
            before = len(user.revealed())
            history.append({"role": "assistant", "content": f"{probing} ({turn})"})
            message = user.reply(history)
            history.append({"role": "user", "content": message})

            assert len(user.revealed()) - before <= limit
            assert len(sentences(message)) <= 3


def test_volunteers_traits_once_the_chat_has_warmed_up() -> None:
    user = ScriptedUser(unprompted=1.0)
    user.start(PROFILE, seed=3)

    talk(user, ["Okay.", "Right.", "I see.", "Sure thing.", "Go on."])

    assert len(user.revealed()) >= 3


def test_same_seed_replays_the_same_conversation() -> None:
    turns = ["What's your work like?", "And weekends?", "Anything you love eating?"]
    first, second = ScriptedUser(), ScriptedUser()
    first.start(PROFILE, seed=11)
    second.start(PROFILE, seed=11)

    assert talk(first, turns) == talk(second, turns)
    assert first.revealed() == second.revealed()


def test_complains_when_the_assistant_repeats_itself() -> None:
    user = ScriptedUser()
    user.start(PROFILE, seed=4)

    *_, answer = talk(user, ["Have you tried a weekend trip?", "Have you tried a weekend trip?"])

    assert any(phrase in answer for phrase in ("already said", "same thing"))


def test_tells_a_flatterer_to_stop() -> None:
    user = ScriptedUser()
    user.start(PROFILE, seed=5)

    _, answer = talk(user, ["Great question! You're so smart. Try a short hike."])

    assert any(word in answer for word in ("compliments", "butter", "flattery"))


def test_changes_a_revealed_preference_and_says_so() -> None:
    user = ScriptedUser(change_at_turn=2)
    user.start(PROFILE, seed=6)

    *_, answer = talk(user, ["What do you like to eat?", "Anything else on your mind?"])

    changed = [t for t in user.true_profile().traits if t.kind == "diet"]
    assert changed and changed[0].value != "vegan"
    assert VEGAN not in user.revealed() and changed[0] in user.revealed()
    assert any(lead in answer for lead in ("changed", "update", "Scratch"))
    assert PROFILE.traits[1] == VEGAN  # the caller's profile is left alone


def test_a_changed_preference_never_contradicts_the_rest_of_the_profile() -> None:
    for profile in generate_profiles(200, seed=8):
        user = ScriptedUser()
        user.start(profile, seed=0)
        change = user.change_preference()
        assert change is not None
        old, new = change
        assert old.kind == new.kind and old.value != new.value
        assert sorted(user.true_profile().facts()) != sorted(profile.facts())


def test_traits_from_outside_the_catalogue_are_said_in_the_first_person() -> None:
    user = ScriptedUser()
    user.start(Profile("x", [Trait(OTHER, "enjoys brewing beer", "enjoys brewing beer")]), 0)

    _, answer = talk(user, ["Do you brew anything yourself, like beer?"])

    assert "I enjoy brewing beer." in answer


def test_training_and_held_out_users_reveal_traits_in_disjoint_phrasings() -> None:
    from training.simulators.phrasing import reveal_options

    profiles = generate_profiles(30, seed=11)
    split_values = 0
    for profile in profiles:
        for trait in profile.traits:
            train, test = reveal_options(trait, "train"), reveal_options(trait, "test")
            every = reveal_options(trait)
            assert train and test and set(train) | set(test) == set(every)
            if len(every) > 1:
                split_values += 1
                assert not set(train) & set(test)
    assert split_values > 50
    said = []
    for index, profile in enumerate(profiles[:10]):
        user = ScriptedUser(share=0.5, phrasing_split="test")
        user.start(profile, index)
        history: list[dict[str, str]] = []
        for _ in range(4):
            history.append({"role": "user", "content": user.reply(history)})
            history.append({"role": "assistant", "content": "Tell me more about you?"})
        said.append(" ".join(m["content"] for m in history if m["role"] == "user"))
        for trait in user.revealed():
            train_only = set(reveal_options(trait, "train")) - set(reveal_options(trait, "test"))
            assert not any(sentence in said[-1] for sentence in train_only)
