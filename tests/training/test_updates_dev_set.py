"""The hand-written updates dev set (`training/eval_data/updates_dev_v1.jsonl`): users who correct
what they said, whose facts change, and who ask to forget or not to store something. The rules
every hand-written set is held to (shape, grounded gold, third parties named, disjoint from the
training generators and from transfer v2) run on it in test_transfer_set.py; the updates rules
are transfer v2's own (test_transfer_v2.py); here: its ids, its coverage floors, and no sentence
shared with the other dev sets."""

from __future__ import annotations

from collections import Counter

from tests.training.test_transfer_set import transfer_sentences, users
from tests.training.test_transfer_v2 import (
    check_every_retired_fact_is_named_by_an_update,
    check_updates_retire_their_kind_and_keep_gold,
    check_what_must_be_forgotten_was_said_by_the_user,
    coverage,
)
from training.eval_data import DEV_V1, TRANSFER_V1, UPDATE_KINDS, UPDATES_DEV_V1

FLOORS = {
    "a correction or a change (update)": 12,
    "a forget or don't-store request (update)": 10,
    "third-party facts": 8,
    "nothing personal at all": 4,
    "facts inside a request": 4,
    "two or more facts and a request in the first message": 5,
}
"""Category of test_transfer_v2.COVERAGE -> the least number of users in this set."""
PER_KIND = 5
"""The least number of updates of each kind: correction, change, forget, dont_store."""


def test_the_updates_dev_set_loads_with_at_least_30_users_numbered_in_order() -> None:
    dev = users(UPDATES_DEV_V1)
    assert len(dev) >= 30
    assert [u.id for u in dev] == [f"ud1-{n:02d}" for n in range(1, len(dev) + 1)]


def test_the_updates_dev_set_covers_each_category() -> None:
    counts = coverage(UPDATES_DEV_V1)
    short = {name: counts[name] for name, floor in FLOORS.items() if counts[name] < floor}
    assert short == {}, counts


def test_every_kind_of_update_is_there() -> None:
    kinds = Counter(x.kind for u in users(UPDATES_DEV_V1) for x in u.updates)
    assert {kind: kinds[kind] for kind in UPDATE_KINDS if kinds[kind] < PER_KIND} == {}, kinds


def test_every_update_retires_facts_of_its_kind_and_keeps_gold() -> None:
    check_updates_retire_their_kind_and_keep_gold(UPDATES_DEV_V1)


def test_every_retired_fact_is_named_by_an_update() -> None:
    check_every_retired_fact_is_named_by_an_update(UPDATES_DEV_V1)


def test_what_must_be_forgotten_was_said_by_the_user() -> None:
    check_what_must_be_forgotten_was_said_by_the_user(UPDATES_DEV_V1)


def test_no_updates_dev_sentence_is_in_transfer_v1_or_the_dev_set() -> None:
    """New people in new words: a sentence shared with another dev set would count its users
    twice in a decision read on both."""
    mine = transfer_sentences(UPDATES_DEV_V1)
    for other in (TRANSFER_V1, DEV_V1):
        seen = transfer_sentences(other)
        assert {s: where for s, where in mine.items() if s in seen} == {}, other.name
