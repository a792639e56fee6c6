from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import OTHER, load_profiles, split_persona

ALOE_PROFILES = Path(__file__).resolve().parents[3].parent / "shared/data/aloe/profile.jsonl"


def test_persona_paragraph_becomes_one_fact_per_trait() -> None:
    paragraph = (
        "He is a 33-year-old mechanical engineer who enjoys running and brewing beer. "
        "He is married and has a young daughter."
    )

    assert split_persona(paragraph) == [
        "is 33 years old",
        "is a mechanical engineer",
        "enjoys running",
        "enjoys brewing beer",
        "is married",
        "has a young daughter",
    ]


def test_listed_items_each_keep_their_verb() -> None:
    traits = split_persona("She enjoys hiking, yoga, and painting. She is curious and open-minded.")

    assert traits == [
        "enjoys hiking",
        "enjoys yoga",
        "enjoys painting",
        "is curious",
        "is open-minded",
    ]


def test_names_joined_by_and_stay_in_one_trait() -> None:
    traits = split_persona("She lives in a flat with two cats named Pixel and Scribble.")

    assert traits == ["lives in a flat", "has two cats named Pixel and Scribble"]


def test_a_clause_about_someone_else_is_not_split_off() -> None:
    traits = split_persona("He has an older sister who is a lawyer.")

    assert traits == ["has an older sister who is a lawyer"]


def test_loads_persona_strings_trait_lists_and_trait_objects(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    lines = [
        json.dumps("She is a 41-year-old pilot. She has a dog."),
        "",
        json.dumps(["likes chess", "likes chess", "lives in Oslo"]),
        json.dumps({"id": "u7", "traits": ["is a night owl"]}),
    ]
    path.write_text("\n".join(lines) + "\n")

    profiles = load_profiles(path)

    assert [p.id for p in profiles] == ["people-1", "people-3", "u7"]
    assert profiles[0].texts() == ["is 41 years old", "is a pilot", "has a dog"]
    assert profiles[1].texts() == ["likes chess", "lives in Oslo"]
    assert all(t.kind == OTHER for p in profiles for t in p.traits)


def test_records_run_together_on_one_line_are_both_read(tmp_path: Path) -> None:
    path = tmp_path / "joined.jsonl"
    path.write_text(json.dumps("He has a cat.") + json.dumps("She has a dog.") + "\n")

    profiles = load_profiles(path)

    assert [(p.id, p.texts()) for p in profiles] == [
        ("joined-1", ["has a cat"]),
        ("joined-1.1", ["has a dog"]),
    ]


def test_a_malformed_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(["fine"]) + "\n" + json.dumps({"name": "no traits"}) + "\n")

    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_profiles(path)


def test_reads_the_aloe_personas_into_atomic_traits() -> None:
    if not ALOE_PROFILES.exists():
        pytest.skip(f"ALOE persona file not present at {ALOE_PROFILES} (a fresh clone elsewhere)")

    profiles = load_profiles(ALOE_PROFILES)

    # 330 lines, one of which holds two records run together
    assert len(profiles) == 331
    for profile in profiles:
        assert len(profile.traits) >= 3, profile
        for text in profile.texts():
            assert not text.lower().startswith(("he ", "she ", "he's", "she's")), text
            assert not text.endswith("."), text
    with_age = [p for p in profiles if any(t.endswith("years old") for t in p.texts())]
    assert len(with_age) > 300
