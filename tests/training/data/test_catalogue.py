from __future__ import annotations

import re

from training.data.catalogue import KINDS, conflicts

FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|my|me|we|we're|our|mine)\b", re.I)


def test_catalogue_has_at_least_25_kinds_with_several_values() -> None:
    assert len(KINDS) >= 25
    for kind in KINDS.values():
        assert len(kind.values) >= 2, kind.name
        assert kind.keywords, kind.name


def test_every_value_can_be_phrased_several_ways_in_each_person() -> None:
    for kind in KINDS.values():
        for value in kind.values:
            assert len(set(value.third)) >= 2, (kind.name, value.name)
            assert len(set(value.first)) >= 2, (kind.name, value.name)


def test_reveals_are_single_first_person_sentences() -> None:
    for kind in KINDS.values():
        for value in kind.values:
            for sentence in value.first:
                assert sentence[-1] in ".!?", sentence
                assert not re.search(r"[.!?]\s", sentence), sentence
                assert len(sentence.split()) <= 16, sentence
                # Some reveals imply the speaker ("No pets.") rather than name them.
            assert any(FIRST_PERSON.search(s) for s in value.first), value


def test_profile_traits_are_third_person_without_a_subject() -> None:
    for kind in KINDS.values():
        for value in kind.values:
            for text in value.third:
                assert not FIRST_PERSON.search(text), text
                assert text[0].islower(), text
                assert not text.endswith("."), text


def test_contradictory_values_are_excluded_from_each_other() -> None:
    assert conflicts("marital:single", {"living:with partner"})
    assert conflicts("age:early twenties", {"children:grown-up children"})
    assert conflicts("diet:vegan", {"cuisine:barbecue"})
    assert not conflicts("diet:vegan", {"cuisine:Thai"})
