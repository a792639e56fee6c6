"""The hand-written dev set: the transfer set's rules (well formed, gold grounded, third parties
named, disjoint from every training generator), and no sentence or user shared with the
transfer set, which it exists to spare."""

from __future__ import annotations

import re
from functools import cache

from tests.training.test_transfer_set import (
    PARTY_WORDS,
    generator_sentences,
    generator_templates,
    long_sentences,
    sampled_sentences,
    transfer_sentences,
)
from training.eval_data import DEV_V1, USER, TransferUser, keyword_match, load_transfer_set


@cache
def dev_users() -> tuple[TransferUser, ...]:
    return tuple(load_transfer_set(DEV_V1))


def dev_sentences() -> dict[str, str]:
    found: dict[str, str] = {}
    for user in dev_users():
        for message in (m for conversation in user.conversations for m in conversation):
            for sentence in long_sentences([message]):
                found.setdefault(sentence, f"{user.id}: {message}")
    return found


def test_the_dev_set_loads_with_unique_ids_and_the_transfer_sets_shape() -> None:
    users = dev_users()
    assert len(users) >= 20
    assert len({u.id for u in users}) == len(users)
    assert all(u.id.startswith("dv1-") for u in users)
    personal = re.compile(r"\b(?:my|i'm|i am|i've|we're|our)\b", re.I)
    for user in users:
        first, second = user.conversations
        assert 5 <= len(first) <= 8 and 2 <= len(second) <= 3, user.id
        opener = second[0].replace("\u2019", "'")
        assert not personal.search(opener) and not any(f.matches(opener) for f in user.gold)


def test_the_dev_set_covers_what_people_do() -> None:
    users = dev_users()
    assert sum(any(f.turn == 1 for f in u.gold) for u in users) >= 12
    assert sum(any(f.in_request for f in u.gold) for u in users) >= 5
    assert sum(any(f.kind == "negation" for f in u.forbidden) for u in users) >= 6
    assert sum(any(f.about != USER for f in u.gold) for u in users) >= 6
    assert sum(any(f.kind == "outdated" for f in u.forbidden) for u in users) >= 3
    assert sum(not u.gold for u in users) >= 2


def test_dev_gold_is_grounded_self_consistent_and_names_third_parties() -> None:
    for user in dev_users():
        for fact in user.gold:
            message = user.conversations[0][fact.turn - 1]
            keywords = {k for group in fact.any_of for k in group}
            assert any(keyword_match(message, ((k,),)) for k in keywords), (user.id, fact.fact)
            assert fact.turn not in user.small_talk, (user.id, fact.fact)
            if fact.about != USER:
                names = PARTY_WORDS.get(fact.about, (fact.about,))
                for group in fact.any_of:
                    named = any(keyword_match(k, tuple((n,) for n in names)) for k in group)
                    assert named, (user.id, fact.fact, group)
        for fact in (*user.gold, *user.forbidden):
            assert fact.matches(fact.fact), (user.id, fact.fact)
        for bad in user.forbidden:
            for fact in user.gold:
                assert not keyword_match(fact.fact, bad.any_of), (user.id, bad.fact, fact.fact)


def test_no_dev_sentence_comes_from_a_generator_or_the_transfer_set() -> None:
    sentences = dev_sentences()
    generated = generator_sentences() | sampled_sentences()
    assert {s: w for s, w in sentences.items() if s in generated} == {}
    fitted = {s: w for s, w in sentences.items() for p in generator_templates() if p.fullmatch(s)}
    assert fitted == {}
    assert {s: w for s, w in sentences.items() if s in transfer_sentences()} == {}
