"""The negation guard of the transfer set's matching (`KeywordFact.asserted_by`, and
`ForbiddenFact.matches`, which is it): a trait that says the opposite of a fact does not match
it, and one that only holds a "not" about something else is not excused."""

from __future__ import annotations

from training.eval_data import ForbiddenFact, GoldFact

KIWI = GoldFact("is allergic to kiwi", (("allerg", "kiwi"), ("kiwi allergy",)), turn=1)
MUSHROOMS = GoldFact(
    "can't stand mushrooms",
    (
        ("can't stand", "mushroom"),
        ("hates", "mushroom"),
        ("dislike", "mushroom"),
        ("not", "mushroom"),
    ),
    turn=1,
)
CORIANDER = GoldFact("dislikes coriander", (("coriander",),), turn=1)
FLAT = GoldFact("lives in a tiny flat with no garden", (("flat",), ("no garden",)), turn=1)
FISH = GoldFact("doesn't eat fish or seafood", (("fish",), ("seafood",)), turn=1)


def test_a_trait_that_negates_a_gold_fact_does_not_assert_it() -> None:
    assert KIWI.asserted_by("is allergic to kiwi") and KIWI.asserted_by("has a kiwi allergy")
    assert KIWI.matches("is not allergic to kiwi")  # the lenient keyword match is fooled
    assert not KIWI.asserted_by("is not allergic to kiwi")
    assert not KIWI.asserted_by("has no kiwi allergy")
    assert FISH.asserted_by("doesn't eat fish") and not FISH.asserted_by("eats fish daily")


def test_a_not_about_something_else_does_not_make_a_trait_negative() -> None:
    # The group ("not", "mushroom") is held, but the "not" is about onions.
    assert MUSHROOMS.matches("likes mushrooms, not onions")
    assert not MUSHROOMS.asserted_by("likes mushrooms, not onions")
    assert not MUSHROOMS.asserted_by("likes mushrooms not onions")  # a cue after does not count
    assert MUSHROOMS.asserted_by("will not eat mushrooms")
    assert FLAT.asserted_by("lives in a flat")  # the fact's own "no garden" is not about the flat


def test_aversion_reads_like_negation_and_two_negations_cancel() -> None:
    assert CORIANDER.asserted_by("doesn't like coriander") and CORIANDER.asserted_by(
        "hates coriander"
    )
    assert not CORIANDER.asserted_by("loves coriander")
    assert MUSHROOMS.asserted_by("dislikes mushrooms") and MUSHROOMS.asserted_by("hates mushrooms")
    assert not MUSHROOMS.asserted_by("doesn't dislike mushrooms")


def test_a_long_message_that_says_it_both_ways_still_asserts_it() -> None:
    nuts = GoldFact("son is allergic to nuts", (("son", "nut"),), turn=1, about="son")
    assert nuts.asserted_by("no nuts please, my son is allergic to nuts")
    assert not nuts.asserted_by("my son eats anything, no nuts though")


def test_a_forbidden_fact_excuses_a_trait_only_when_the_trait_negates_its_keywords() -> None:
    kiwi = ForbiddenFact("likes kiwi", (("likes", "kiwi"),), "negation")
    assert kiwi.matches("likes kiwi, not bananas")  # was excused for holding "not" anywhere
    assert not kiwi.matches("likes bananas, not kiwi")
    vegetarian = ForbiddenFact("is vegetarian", (("vegetarian",),), "outdated")
    assert vegetarian.matches("is vegetarian, not vegan")
    assert not vegetarian.matches("is not vegetarian anymore")
    assert not vegetarian.matches("no longer vegetarian")


def test_a_forbidden_fact_that_is_itself_negative_matches_the_trait_that_still_says_it() -> None:
    meatless = ForbiddenFact("doesn't eat meat", (("eat", "meat"),), "outdated")
    assert meatless.matches("doesn't eat meat")
    assert not meatless.matches("eats meat again")


def test_a_cue_negates_only_the_words_it_reaches() -> None:
    student = GoldFact("is a psychology student", (("psych",),), turn=1)
    far = "has no clue how to reference a video in apa for a first year psych essay"
    assert student.asserted_by(far)  # the "no" is about the clue, twelve words back
    assert not student.asserted_by("is no longer studying psych")


def test_a_contraction_typed_without_its_apostrophe_still_negates() -> None:
    assert not KIWI.asserted_by("i dont have a kiwi allergy")
    assert not KIWI.asserted_by("im not allergic to kiwi, i just dont like it")
    assert FISH.asserted_by("i dont eat fish") and FISH.asserted_by("cannot eat fish")
