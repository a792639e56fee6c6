from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from training.data import (
    Profile,
    generate_profiles,
    load_profiles,
    split_profiles,
    write_profiles,
)
from training.data.catalogue import EXCLUSIONS, KINDS, key


def test_generates_ten_thousand_distinct_profiles() -> None:
    profiles = generate_profiles(10_000, seed=0)

    assert len(profiles) == 10_000
    assert len({profile.facts() for profile in profiles}) == 10_000
    assert len({profile.id for profile in profiles}) == 10_000


def test_same_seed_gives_the_same_profiles_and_another_seed_does_not() -> None:
    first = generate_profiles(50, seed=7)

    assert generate_profiles(50, seed=7) == first
    assert [p.facts() for p in generate_profiles(50, seed=8)] != [p.facts() for p in first]


def test_profiles_hold_the_requested_number_of_traits() -> None:
    sizes = {len(p.traits) for p in generate_profiles(500, seed=1, traits_per_profile=(3, 5))}

    assert sizes == {3, 4, 5}


def test_profiles_never_contradict_themselves() -> None:
    for profile in generate_profiles(3_000, seed=2):
        keys = [key(t.kind, t.value) for t in profile.traits]
        assert len(set(keys)) == len(keys)
        pairs = {frozenset((a, b)) for a in keys for b in keys if a != b}
        assert not pairs & EXCLUSIONS, profile
        for kind, count in Counter(t.kind for t in profile.traits).items():
            assert count <= KINDS[kind].max_values, profile


def test_no_profile_is_both_childless_and_a_parent() -> None:
    for profile in generate_profiles(3_000, seed=3):
        children = [t.value for t in profile.traits if t.kind == "children"]
        assert len(children) <= 1


def test_trait_texts_come_from_the_values_they_describe() -> None:
    for profile in generate_profiles(200, seed=4):
        for trait in profile.traits:
            assert trait.text in KINDS[trait.kind].value(trait.value).third


def test_profiles_survive_a_round_trip_through_jsonl(tmp_path: Path) -> None:
    profiles = generate_profiles(20, seed=5)
    path = tmp_path / "profiles.jsonl"

    write_profiles(path, profiles)

    assert load_profiles(path) == profiles


def test_split_shares_no_profile_between_train_validation_and_test() -> None:
    train, validation, test = split_profiles(generate_profiles(1_000, seed=6), seed=0)

    assert (len(train), len(validation), len(test)) == (800, 100, 100)
    ids = [{p.id for p in part} for part in (train, validation, test)]
    facts = [{p.facts() for p in part} for part in (train, validation, test)]
    for left, right in ((0, 1), (0, 2), (1, 2)):
        assert not ids[left] & ids[right]
        assert not facts[left] & facts[right]


def test_split_sends_a_duplicated_user_to_one_side_only() -> None:
    profiles = generate_profiles(100, seed=9)
    duplicate = Profile("copy", list(reversed(profiles[0].traits)))

    parts = split_profiles([*profiles, duplicate], seed=1)

    assert sum(len(part) for part in parts) == 100
    assert sum(p.facts() == duplicate.facts() for part in parts for p in part) == 1


def test_split_rejects_fractions_that_do_not_sum_to_one() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        split_profiles(generate_profiles(10, seed=0), fractions=(0.8, 0.1, 0.2))


def test_generator_rejects_impossible_trait_counts() -> None:
    with pytest.raises(ValueError, match="traits_per_profile"):
        generate_profiles(1, seed=0, traits_per_profile=(5, 200))
