"""The transfer-set metrics (training/evaluate/transfer.py) on hand-made stored profiles: each
test pins one definition, edge cases included."""

from __future__ import annotations

import pytest

from training.eval_data import ForbiddenFact, GoldFact, TransferUser
from training.evaluate import transfer
from training.evaluate.intervals import bootstrap
from training.evaluate.transfer import UserProfiles, summarise, user_metrics

VEGAN = GoldFact("follows a vegan diet", (("vegan",),), turn=1)
BOYFRIEND = GoldFact("boyfriend loves meat", (("boyfriend", "meat"),), turn=1, about="boyfriend")
KNEES = GoldFact("has bad knees", (("knee",),), turn=3)
EATS_PEANUTS = ForbiddenFact("eats peanuts", (("eats", "peanut"), ("likes", "peanut")), "negation")


def person(*gold: GoldFact, forbidden: tuple[ForbiddenFact, ...] = ()) -> TransferUser:
    conversation = ("one", "two", "three")
    return TransferUser("u", (conversation, ("hi again",)), tuple(gold), forbidden)


def run(
    user: TransferUser, conversation1: list[list[str]], conversation2: list[str] | None = None
) -> transfer.UserMetrics:
    last = conversation1[-1] if conversation2 is None else conversation2
    return user_metrics(UserProfiles(user, conversation1, last))


def test_precision_recall_and_f1_are_taken_on_the_profile_at_the_end_of_conversation_1() -> None:
    user = person(VEGAN, BOYFRIEND, KNEES)
    end = ["is vegan", "boyfriend loves meat", "likes jazz"]  # 2 of 3 right, 2 of 3 found
    scored = run(user, [["likes jazz"], ["is vegan"], end])
    assert scored.precision == pytest.approx(2 / 3)
    assert scored.recall == pytest.approx(2 / 3)
    assert scored.f1 == pytest.approx(2 / 3)
    # A trait that holds two gold facts' keywords is one correct trait; the facts are both stored.
    both = run(user, [["vegan", "vegan with a meat-loving boyfriend"]])
    assert both.precision == 1.0 and both.recall == pytest.approx(2 / 3)
    assert both.f1 == pytest.approx(0.8)


def test_a_third_partys_fact_is_not_stored_by_a_trait_that_does_not_name_them() -> None:
    scored = run(person(BOYFRIEND), [["loves meat"]])
    assert scored.precision == 0.0 and scored.recall == 0.0 and scored.f1 == 0.0


def test_a_user_with_no_gold_counts_toward_precision_only() -> None:
    silent = person()
    stored_anyway = run(silent, [["works with spreadsheets", "likes Google Sheets"]])
    assert stored_anyway.precision == 0.0  # everything stored is wrong
    assert stored_anyway.recall is None and stored_anyway.f1 is None
    assert stored_anyway.retention is None and stored_anyway.turn1_recall is None
    nothing = run(silent, [[]])
    assert (nothing.precision, nothing.recall, nothing.f1) == (None, None, None)


def test_storing_nothing_has_no_precision_and_scores_zero_recall_and_f1() -> None:
    scored = run(person(VEGAN, KNEES), [[], [], []])
    assert scored.precision is None
    assert scored.recall == 0.0 and scored.f1 == 0.0 and scored.turn1_recall == 0.0
    assert scored.retention is None  # nothing known, so nothing to keep
    assert scored.contradictions == scored.traits_final == 0


def test_retention_is_the_share_of_facts_known_at_the_end_still_stored_in_conversation_2() -> None:
    user = person(VEGAN, BOYFRIEND, KNEES)
    end = ["is vegan", "has bad knees"]
    # Keeps the knees, forgets veganism; learning the boyfriend now does not make up for it.
    scored = run(user, [end], ["has bad knees", "boyfriend likes meat"])
    assert scored.retention == 0.5
    assert run(user, [end], end).retention == 1.0
    assert run(user, [end], []).retention == 0.0  # the whole profile erased
    # A fact stored mid-conversation and dropped before its end is not "known at the end".
    assert run(user, [["is vegan"], ["has bad knees"]], ["has bad knees"]).retention == 1.0


def test_turn_1_recall_reads_the_profile_after_turn_1_and_only_first_message_facts() -> None:
    user = person(VEGAN, BOYFRIEND, KNEES)
    scored = run(user, [["is vegan", "has bad knees"], ["is vegan", "boyfriend eats meat"]])
    assert scored.turn1_recall == 0.5  # the boyfriend came a turn late; knees are not turn 1
    assert run(person(KNEES), [["has bad knees"]]).turn1_recall is None


def test_contradictions_count_distinct_traits_of_the_final_profiles_only() -> None:
    user = person(VEGAN, forbidden=(EATS_PEANUTS,))
    scored = run(
        user,
        [["is vegan", "eats peanuts"], ["is vegan", "likes peanuts"], ["is vegan", "eats peanuts"]],
        ["is vegan", "eats peanuts", "is allergic to peanuts", "never eats peanuts"],
    )
    # Final traits: "is vegan", "eats peanuts", "is allergic to peanuts", "never eats peanuts";
    # only the one asserting the forbidden fact counts, once though stored twice. "likes
    # peanuts", stored mid-conversation and dropped, is not in a final profile.
    assert (scored.contradictions, scored.traits_final) == (1, 4)
    assert run(user, [["never eats peanuts"]]).contradictions == 0  # a negation is right
    # A "not" about something else does not excuse it.
    assert run(user, [["eats peanuts, not almonds"]]).contradictions == 1


def test_bootstrap_gives_the_mean_or_the_pooled_ratio_inside_a_seeded_interval() -> None:
    values = [0.0, 0.5, 1.0, 1.0]
    estimate = bootstrap(values, seed=3)
    assert estimate is not None
    assert estimate.mean == 0.625 and estimate.users == 4
    assert 0.0 <= estimate.low < estimate.mean < estimate.high <= 1.0
    assert bootstrap(values, seed=3) == estimate  # seeded: the same interval every time
    ratio = bootstrap([1, 0], [1, 9])  # one contradiction in ten traits, not a mean of 1 and 0
    assert ratio is not None and ratio.mean == 0.1 and ratio.low >= 0.0 and ratio.high <= 1.0
    one = bootstrap([0.3])
    assert one is not None and (one.mean, one.low, one.high) == (0.3, 0.3, 0.3)
    assert bootstrap([]) is None
    with pytest.raises(ValueError, match="nothing to count"):
        bootstrap([0], [0])


def test_summary_averages_each_metric_over_the_users_it_applies_to() -> None:
    users = [
        run(person(VEGAN, KNEES), [["is vegan"]]),  # P 1, R 0.5, F1 2/3, turn-1 recall 1
        run(person(), [["likes jazz"]]),  # P 0 only
        run(person(VEGAN, forbidden=(EATS_PEANUTS,)), [[]], ["eats peanuts"]),  # R 0, F1 0
    ]
    summary = summarise(users, resamples=200)
    assert set(summary) == set(transfer.METRICS)
    values = {name: e and (e.mean, e.users) for name, e in summary.items()}
    assert values["precision"] == (0.5, 2)
    assert values["recall"] == (0.25, 2)
    assert values["f1"] == (pytest.approx(1 / 3), 2)
    assert values["f1_one_to_one"] == (pytest.approx(1 / 3), 2)
    assert values["turn1_recall"] == (0.5, 2)
    assert values["retention"] == (1.0, 1)
    assert values["contradiction_rate"] == (pytest.approx(1 / 3), 3)  # 1 of 3 traits, pooled
    assert values["junk_rate"] == (pytest.approx(2 / 3), 3)  # jazz and the peanuts
    assert values["update_accuracy"] is None  # nobody corrected anything
    assert summarise([run(person(), [[]])])["retention"] is None


def test_profile_tokens_per_covered_fact_pool_users_who_covered_nothing() -> None:
    users = [
        run(person(VEGAN), [["is vegan"]]),  # 2 tokens, 1 fact
        run(person(VEGAN), [["likes jazz music a lot"]]),  # 5 tokens, no fact
        run(person(VEGAN), [[]]),  # nothing stored: nothing to count
    ]
    estimate = summarise(users, resamples=200)["tokens_per_fact"]
    assert estimate is not None and (estimate.mean, estimate.users) == (7.0, 2)


def test_requests_answered_reads_request_turns_only() -> None:
    exchanges = [
        transfer.Exchange(1, 1, "I'm vegan. Any dinner ideas?", "A lentil curry with rice."),
        transfer.Exchange(1, 2, "Can you suggest a dessert?", "What do you usually like?"),
        transfer.Exchange(1, 3, "Thanks, bye.", ""),  # not a request: not counted
    ]
    assert transfer.requests_answered(exchanges) == 0.5
    assert transfer.requests_answered(exchanges[2:]) is None
    assert transfer.requests_answered([]) is None


def test_paired_differences_compare_the_same_users_and_say_which_is_higher() -> None:
    users = [person(VEGAN, KNEES), person(VEGAN, KNEES)]
    model = [run(u, [["is vegan", "has bad knees"]]) for u in users]
    notebook = [run(u, [["I am vegan and my knees are bad", "hi"]]) for u in users]
    differences = transfer.paired_differences(model, notebook, resamples=200)
    assert set(differences) == set(transfer.PAIRED)
    f1 = differences["f1_one_to_one"]  # 1.0 against 0.5: one trait holds both facts
    assert f1 is not None and f1.mean == pytest.approx(0.5) and f1.low > 0
    junk = differences["junk_rate"]  # 0 of 2 against 1 of 2 ("hi")
    assert junk is not None and junk.mean == pytest.approx(-0.5) and junk.high < 0
    assert differences["update_accuracy"] is None  # neither has one to make
    stranger = TransferUser("v", users[0].conversations, (VEGAN,), ())
    unshared = transfer.paired_differences(model, [run(stranger, [["is vegan"]])])
    assert unshared["f1_one_to_one"] is None  # no user read by both


def test_response_is_the_share_of_replies_the_eval_judge_passes() -> None:
    user = person(VEGAN, KNEES)
    exchanges = [
        # answers the request: passes
        transfer.Exchange(1, 1, "I'm vegan. Any dinner ideas?", "A lentil curry with rice."),
        # asks again for what turn 1 said: fails
        transfer.Exchange(1, 2, "Sounds good.", "Great. Are you vegan or do you eat meat?"),
        # knees come up at turn 3: asking about them in turn 3's reply is not "again"
        transfer.Exchange(1, 3, "My knees hurt.", "Sorry to hear that. Is it your knee joint?"),
        # conversation 2: everything said in conversation 1 is known
        transfer.Exchange(2, 1, "hi again", "Welcome back! How are your knees today?"),
    ]
    scored = user_metrics(UserProfiles(user, [[], [], []], [], exchanges))
    assert scored.response == pytest.approx(2 / 4)
    assert run(user, [[]]).response is None  # no replies recorded, no score


def test_run_on_traits_are_those_that_go_past_one_statement_pooled_over_users() -> None:
    assert not transfer.runs_on("is a nurse in Seattle and loves hiking")
    assert not transfer.runs_on("lives in St. Louis.")
    assert transfer.runs_on("works nights, so they sleep late. What age are you?")
    assert not transfer.runs_on("is it cheaper to fly on a Tuesday")
    assert transfer.runs_on("is it cheaper to fly on a Tuesday?")
    users = [
        run(person(VEGAN), [["is vegan. Any ideas for dinner?", "is vegan", "likes jazz"]]),
        run(person(KNEES), [["has bad knees"]]),
    ]
    assert (users[0].run_on, users[0].traits_end) == (1, 3)
    estimate = summarise(users, resamples=200)["run_on_rate"]
    assert estimate is not None and (estimate.mean, estimate.users) == (0.25, 2)
