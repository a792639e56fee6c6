"""The yardsticks a notebook cannot pass (training/evaluate/yardsticks.py), one rule per test,
on hand-made users and profiles."""

from __future__ import annotations

import pytest

from training.eval_data import ForbiddenFact, GoldFact, TransferUser, Update
from training.evaluate import yardsticks

VEGAN = GoldFact("follows a vegan diet", (("vegan",),), turn=1)
NURSE = GoldFact("works as a nurse", (("nurse",),), turn=1)
KNEES = GoldFact("has bad knees", (("knee",),), turn=2)
LISBON = GoldFact("lives in Lisbon", (("Lisbon",),), turn=2)
SESAME = GoldFact(
    "one of the twins is allergic to sesame",
    (("son", "sesame"), ("twin", "sesame")),
    turn=1,
    about="son",
)
BRISTOL = ForbiddenFact("lives in Bristol", (("lives in", "Bristol"),), "outdated")
PREGNANT = ForbiddenFact("is pregnant", (("pregnant",),), "forgotten")
PEANUTS = ForbiddenFact("eats peanuts", (("eats", "peanut"),), "negation")


def person(
    *gold: GoldFact, forbidden: tuple[ForbiddenFact, ...] = (), updates: tuple[Update, ...] = ()
) -> TransferUser:
    conversation = ("one", "two", "three")
    return TransferUser("u", (conversation, ("hi again",)), gold, forbidden, updates=updates)


def test_the_matching_is_maximum_not_greedy() -> None:
    # Trait 0 could take fact 0 or 1, trait 1 only fact 0: greedy gives one pair, the maximum two.
    assert yardsticks.max_matching([[0, 1], [0]]) == {0: 1, 1: 0}
    assert len(yardsticks.max_matching([[0], [0], [0]])) == 1
    assert yardsticks.max_matching([]) == {}


def test_one_long_trait_is_credited_with_one_fact() -> None:
    gold = (VEGAN, NURSE, KNEES)
    precision, recall, f1, covered = yardsticks.one_to_one(["vegan nurse with bad knees"], gold)
    assert (precision, covered) == (1.0, 1)
    assert recall == pytest.approx(1 / 3) and f1 == pytest.approx(0.5)
    # Split into traits, the same words cover all three facts.
    assert yardsticks.one_to_one(["is vegan", "is a nurse", "has bad knees"], gold)[:3] == (
        1.0,
        1.0,
        1.0,
    )


def test_one_fact_is_credited_to_one_trait() -> None:
    precision, recall, _, covered = yardsticks.one_to_one(["is vegan", "eats vegan"], (VEGAN,))
    assert (precision, recall, covered) == (0.5, 1.0, 1)


def test_one_to_one_takes_the_best_assignment_of_traits_to_facts() -> None:
    # "vegan nurse" must go to the nurse for "is vegan" to be credited too.
    _, recall, _, covered = yardsticks.one_to_one(["vegan nurse", "is vegan"], (VEGAN, NURSE))
    assert (recall, covered) == (1.0, 2)


def test_one_to_one_does_not_credit_a_trait_that_negates_the_fact() -> None:
    kiwi = GoldFact("is allergic to kiwi", (("allerg", "kiwi"),), turn=1)
    assert yardsticks.one_to_one(["is not allergic to kiwi"], (kiwi,))[:3] == (0.0, 0.0, 0.0)


def test_one_to_one_has_the_lenient_metrics_none_rules() -> None:
    assert yardsticks.one_to_one([], (VEGAN,)) == (None, 0.0, 0.0, 0)
    assert yardsticks.one_to_one(["likes jazz"], ()) == (0.0, None, None, 0)
    assert yardsticks.one_to_one([], ()) == (None, None, None, 0)


def test_an_update_is_right_when_the_new_value_is_stored_and_the_old_one_is_gone() -> None:
    moved = person(LISBON, forbidden=(BRISTOL,), updates=(Update(2, "change", (0,), (0,)),))
    assert yardsticks.update_accuracy(moved, ["lives in Lisbon"]) == 1.0
    assert yardsticks.update_accuracy(moved, ["lives in Lisbon", "lives in Bristol"]) == 0.0
    assert yardsticks.update_accuracy(moved, ["likes tea"]) == 0.0  # the new value is missing
    assert yardsticks.update_accuracy(moved, ["lives in Lisbon, no longer lives in Bristol"]) == 1
    assert yardsticks.update_accuracy(person(LISBON, forbidden=(BRISTOL,)), []) is None


def test_a_forget_that_is_honoured_stays_honoured_into_conversation_2() -> None:
    asked = person(VEGAN, forbidden=(PREGNANT,), updates=(Update(3, "forget", (0,)),))
    assert yardsticks.forget_compliance(asked, ["is vegan"], ["is vegan"]) == 1.0
    assert yardsticks.forget_compliance(asked, ["is vegan"], ["is vegan", "is not pregnant"]) == 1


def test_a_forget_that_is_not_honoured_fails_at_either_reading() -> None:
    asked = person(VEGAN, forbidden=(PREGNANT,), updates=(Update(3, "dont_store", (0,)),))
    assert yardsticks.forget_compliance(asked, ["is pregnant"], []) == 0.0
    assert yardsticks.forget_compliance(asked, ["is vegan"], ["is vegan", "is pregnant"]) == 0.0
    assert yardsticks.forget_compliance(person(VEGAN, forbidden=(PREGNANT,)), [], []) is None


def test_stale_traits_count_outdated_forgotten_and_private_facts_only() -> None:
    user = person(VEGAN, forbidden=(BRISTOL, PEANUTS))
    end = ["lives in Bristol", "eats peanuts", "is vegan"]
    assert yardsticks.stale(user, end) == (1, 3)  # eating peanuts is wrong, but not stale
    assert yardsticks.stale(person(VEGAN, forbidden=(PEANUTS,)), end) == (0, 0)


def test_party_words_are_the_keywords_that_name_the_about_party() -> None:
    assert yardsticks.party_words(SESAME) == ("son",)  # "twin" names them too, but is kept
    kids = GoldFact("has two children", (("two", "child"), ("two", "kid")), 1, about="children")
    assert yardsticks.party_words(kids) == ("child",)  # "children" starts with it


def test_a_third_party_fact_stored_as_the_users_is_misattributed() -> None:
    user = person(VEGAN, SESAME)
    assert yardsticks.attribution(user, ["is allergic to sesame"]) == (0.0, 1)
    # Stored right once does not excuse storing it as the user's as well.
    assert yardsticks.attribution(user, ["son is allergic to sesame", "allergic to sesame"]) == (
        0.0,
        1,
    )


def test_a_third_party_fact_that_names_the_party_is_attributed() -> None:
    user = person(VEGAN, SESAME)
    assert yardsticks.attribution(user, ["son is allergic to sesame", "is vegan"]) == (1.0, 0)
    assert yardsticks.attribution(user, ["twin boys, one allergic to sesame"]) == (1.0, 0)
    assert yardsticks.attribution(user, ["is not allergic to sesame"]) == (0.0, 0)  # a denial


def test_a_trait_that_is_the_users_own_gold_fact_is_not_misattributed() -> None:
    mine = GoldFact("is allergic to sesame too", (("allerg", "sesame"),), turn=2)
    assert yardsticks.attribution(person(mine, SESAME), ["is allergic to sesame"]) == (0.0, 0)
    assert yardsticks.attribution(person(VEGAN), ["is allergic to sesame"]) == (None, 0)


def test_junk_counts_traits_asserting_no_gold_fact_and_what_conversation_2_added() -> None:
    user = person(VEGAN)
    end = ["is vegan", "likes jazz"]
    after = [*end, "hi again, what should I do this evening?"]
    assert yardsticks.junk(user, end, after) == (2, 3)
    assert yardsticks.junk(user, end, ["is vegan"]) == (1, 2)  # dropping a trait adds nothing
    assert yardsticks.junk(person(), [], []) == (0, 0)


def test_profile_tokens_are_whitespace_tokens() -> None:
    assert yardsticks.profile_tokens(["is vegan", "likes  jazz a lot "]) == 6
