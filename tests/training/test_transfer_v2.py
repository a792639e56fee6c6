"""The held-out transfer set v2 (`training/eval_data/transfer_v2.jsonl`). The rules every
hand-written set is held to (shape, grounded gold, third parties named, disjoint from the
training generators and from the other sets) run on it in test_transfer_set.py; here: its ids,
its coverage by category, and its `updates`, each pointing at facts of the kinds it retires and
keeps. Nothing here runs a model on it: it is read once per shipped model (README). The updates
rules are functions of a set's path, so that every set with updates is held to the same ones
(test_updates_dev_set.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.training.test_transfer_set import users
from training.eval_data import TRANSFER_V2, USER, TransferUser, keyword_match

RETIRES = {
    "correction": "outdated",
    "change": "outdated",
    "forget": "forgotten",
    "dont_store": "private",
}
"""The kind of forbidden fact each kind of update names in `old`."""
COVERAGE: dict[str, tuple[int, Callable[[TransferUser], object]]] = {
    "a correction or a change (update)": (
        15,
        lambda u: any(x.kind in ("correction", "change") for x in u.updates),
    ),
    "a forget or don't-store request (update)": (
        10,
        lambda u: any(x.kind in ("forget", "dont_store") for x in u.updates),
    ),
    "third-party facts": (20, lambda u: any(f.about != USER for f in u.gold)),
    "nothing personal at all": (10, lambda u: not (u.gold or u.forbidden or u.updates)),
    "facts inside a request": (10, lambda u: any(f.in_request for f in u.gold)),
    "two or more facts and a request in the first message": (
        15,
        lambda u: sum(f.turn == 1 for f in u.gold) >= 2 and "?" in u.conversations[0][0],
    ),
    "negations and dislikes": (10, lambda u: any(f.kind == "negation" for f in u.forbidden)),
    "small talk": (10, lambda u: u.small_talk),
}
"""Category -> (the least number of users, whether a user counts); a user may count in several."""


def coverage(path: Path = TRANSFER_V2) -> dict[str, int]:
    """Category -> the users of the set at `path` that count in it (held-out v2 by default)."""
    counted = users(path)
    return {name: sum(1 for u in counted if bool(p(u))) for name, (_, p) in COVERAGE.items()}


# --- the updates rules, shared with every set that has updates (test_updates_dev_set.py) -----


def check_updates_retire_their_kind_and_keep_gold(path: Path) -> None:
    """Each update names forbidden facts of the kind it retires, keeps gold that matches none
    of them, and a correction or a change keeps the value first said at its turn."""
    for user in users(path):
        for update in user.updates:
            where = (user.id, update.turn, update.kind)
            assert {user.forbidden[i].kind for i in update.old} == {RETIRES[update.kind]}, where
            kept = [user.gold[i] for i in update.new]
            for bad in (user.forbidden[i] for i in update.old):
                assert not any(keyword_match(g.fact, bad.any_of) for g in kept), (where, bad.fact)
            if update.kind in ("correction", "change"):
                # the value that replaces the old one is first said where the update is
                assert kept and all(g.turn == update.turn for g in kept), where


def check_every_retired_fact_is_named_by_an_update(path: Path) -> None:
    """The kinds and the updates agree: no outdated, forgotten or private fact without the
    update that retires it, and none retired twice."""
    for user in users(path):
        named = [i for update in user.updates for i in update.old]
        assert len(named) == len(set(named)), user.id
        retired = {i for i, f in enumerate(user.forbidden) if f.kind != "negation"}
        assert retired == set(named), user.id


def check_what_must_be_forgotten_was_said_by_the_user(path: Path) -> None:
    """A forgotten fact is said by the forget turn at the latest; a private one anywhere in
    conversation 1 (a don't-store request may come first)."""
    for user in users(path):
        for update in user.updates:
            if update.kind not in ("forget", "dont_store"):
                continue
            said = user.conversations[0]
            if update.kind == "forget":
                said = said[: update.turn]
            for bad in (user.forbidden[i] for i in update.old):
                keywords = {((k,),) for group in bad.any_of for k in group}
                assert any(keyword_match(m, k) for m in said for k in keywords), (
                    user.id,
                    bad.fact,
                )


def test_transfer_v2_loads_with_at_least_60_users_numbered_in_order() -> None:
    held_out = users(TRANSFER_V2)
    assert len(held_out) >= 60
    assert [u.id for u in held_out] == [f"tv2-{n:02d}" for n in range(1, len(held_out) + 1)]


def test_transfer_v2_covers_each_category() -> None:
    counts = coverage()
    short = {name: n for name, n in counts.items() if n < COVERAGE[name][0]}
    assert short == {}, counts


def test_every_update_retires_facts_of_its_kind_and_keeps_gold() -> None:
    check_updates_retire_their_kind_and_keep_gold(TRANSFER_V2)


def test_every_retired_fact_is_named_by_an_update() -> None:
    check_every_retired_fact_is_named_by_an_update(TRANSFER_V2)


def test_what_must_be_forgotten_was_said_by_the_user() -> None:
    check_what_must_be_forgotten_was_said_by_the_user(TRANSFER_V2)
