"""The hand-written dev set. The transfer set's rules (shape, grounded gold, third parties named,
disjoint from every training generator) run on it in test_transfer_set.py; here: its own ids
and coverage, and no sentence shared with the transfer set, which it exists to spare."""

from __future__ import annotations

from tests.training.test_transfer_set import transfer_sentences, users
from training.eval_data import DEV_V1, USER


def test_the_dev_set_loads_with_its_own_unique_ids() -> None:
    dev = users(DEV_V1)
    assert len(dev) >= 20
    assert len({u.id for u in dev}) == len(dev)
    assert all(u.id.startswith("dv1-") for u in dev)


def test_the_dev_set_covers_what_people_do() -> None:
    dev = users(DEV_V1)
    assert sum(any(f.turn == 1 for f in u.gold) for u in dev) >= 12
    assert sum(any(f.in_request for f in u.gold) for u in dev) >= 5
    assert sum(any(f.kind == "negation" for f in u.forbidden) for u in dev) >= 6
    assert sum(any(f.about != USER for f in u.gold) for u in dev) >= 6
    assert sum(any(f.kind == "outdated" for f in u.forbidden) for u in dev) >= 3
    assert sum(not u.gold for u in dev) >= 2


def test_no_dev_sentence_is_a_transfer_sentence() -> None:
    transfer = transfer_sentences()
    assert {s: w for s, w in transfer_sentences(DEV_V1).items() if s in transfer} == {}
