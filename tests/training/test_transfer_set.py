"""The hand-written transfer set: well formed, covering what real users do, its gold grounded in
what they said, and disjoint from everything the training data generators can say."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

import training.data.catalogue as catalogue
from training import dialogues
from training.data import generate_profiles
from training.data.catalogue import KINDS
from training.eval_data import (
    DEV_V1,
    TRANSFER_V1,
    TRANSFER_V2,
    UPDATES_DEV_V1,
    USER,
    ForbiddenFact,
    TransferSetError,
    TransferUser,
    keyword_match,
    load_transfer_set,
)
from training.simulators import ScriptedUser, llm, phrasing, scripted

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_SOURCES = (
    "training/data/catalogue",
    "training/data/profiles.py",
    "training/simulators",
    "training/dialogues.py",
)
MIN_WORDS = 4
"""Shorter sentences ("Thanks, that helps.") are common property, not a sign of leakage."""
PARTY_WORDS = {
    "grandson": ("grandson", "grandchild"),
    "granddaughter": ("granddaughter", "grandaughter", "grandchild"),
    "grandmother": ("grandmother", "gran", "grandma", "nan"),
    "son": ("son", "boy", "twin", "toddler", "aurelio", "ilyas"),
    "daughter": ("daughter", "girl"),
    "baby": ("baby", "infant", "daughter"),
    "children": ("kid", "child"),
    "mother": ("mother", "mum", "mom"),
    "boyfriend's mother": ("mother", "mum", "mom"),
    "boyfriend's father": ("father", "dad"),
    "father": ("father", "dad"),
    "brother-in-law": ("brother-in-law", "brother", "yaron"),
    "teenagers": ("teen",),
    "wife": ("wife",),
    "husband": ("husband",),
    "boyfriend": ("boyfriend", "partner"),
    "girlfriend": ("girlfriend", "partner"),
    "partner": ("partner",),
    "friend": ("friend", "mate", "dan", "priya", "tendai", "lucía", "lucia", "kwame", "sean"),
    "coworker": ("coworker", "co-worker", "colleague", "femi", "okafor"),
    "manager": ("manager", "boss", "lead", "ingrid"),
    "dog": ("dog", "collie", "pip", "lurcher", "bramble", "greyhound", "salsa", "spaniel", "bosun"),
    "cat": ("cat", "kitten", "tofu", "bruno", "paprika", "humbug", "mitzi"),
    "parrot": ("parrot", "african grey", "pickle"),
    "rabbits": ("rabbit", "bunny", "bunnies", "mochi", "pretzel"),
    "flatmate": ("flatmate", "roommate"),
    "guinea pigs": ("guinea pig",),
    "neighbour": ("neighbour", "neighbor"),
    "tortoise": ("tortoise", "gerald"),
}
"""Words that name each third party (names given in the set included). A fact about someone
else counts as stored only when the trait names them: "loves dinosaurs" alone is the user's."""
_WORD = re.compile(r"[\w£$€]+(?:['-]\w+)*")
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]\w*\}")
_SLOT = "qqslotqq"


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower().replace("\u2019", "'")))


def split_sentences(text: str) -> list[str]:
    """Sentences whatever the case of the next word: lowercase typists end sentences too."""
    return [part for part in re.split(r"(?<=[.!?])\s+|\n+", text) if part.strip()]


def long_sentences(texts: Iterable[str]) -> set[str]:
    found = set()
    for text in texts:
        for sentence in split_sentences(text):
            normal = normalise(sentence)
            if len(normal.split()) >= MIN_WORDS:
                found.add(normal)
    return found


@cache
def users(path: Path = TRANSFER_V1) -> tuple[TransferUser, ...]:
    return tuple(load_transfer_set(path))


@cache
def transfer_sentences(path: Path = TRANSFER_V1) -> dict[str, str]:
    """Normalised sentence -> the user and message it comes from."""
    found: dict[str, str] = {}
    for user in users(path):
        for conversation in user.conversations:
            for message in conversation:
                for sentence in long_sentences([message]):
                    found.setdefault(sentence, f"{user.id}: {message}")
    return found


@pytest.fixture(
    params=[TRANSFER_V1, DEV_V1, TRANSFER_V2, UPDATES_DEV_V1],
    ids=["transfer", "dev", "transfer_v2", "updates_dev"],
)
def hand_written(request: pytest.FixtureRequest) -> Path:
    """Each hand-written set: the rules below hold for transfer v1, the dev sets and the held-out
    transfer v2 alike."""
    path: Path = request.param
    return path


# --- what the training data generators can say ---------------------------------------------


def _strings(value: object) -> Iterator[str]:
    """Every string inside a module-level value: constants, tuples, dicts, catalogue kinds."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name))


def _source_literals() -> Iterator[str]:
    """Every string literal in the generators' source, so a phrasing pool added to any of these
    files is covered without this test knowing its name."""
    for entry in GENERATOR_SOURCES:
        path = ROOT / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    yield node.value


def _rendered() -> Iterator[str]:
    """What the generators build from their pieces: every catalogue value in every person, the
    scripted user's lead-ins before each reveal, the teacher's acknowledgement of each trait."""
    thirds = [text for kind in KINDS.values() for value in kind.values for text in value.third]
    firsts = [text for kind in KINDS.values() for value in kind.values for text in value.first]
    yield from thirds
    yield from firsts
    yield from (phrasing.first_person(text) for text in thirds)
    for prefix in (*scripted.LEADS, *scripted.CHANGED):
        yield from (prefix + sentence for sentence in firsts)
    for template in dialogues.ACKNOWLEDGE:
        yield from (template.format(clause=dialogues.second_person(t)) for t in thirds)
    yield from dialogues.QUESTIONS.values()


@cache
def generator_texts() -> tuple[str, ...]:
    modules: list[ModuleType] = [catalogue, scripted, phrasing, llm, dialogues]
    modules += [getattr(catalogue, name) for name in ("life", "person", "routine", "tastes")]
    texts = [s for module in modules for value in vars(module).values() for s in _strings(value)]
    texts += list(_source_literals())
    texts += list(_rendered())
    # The catalogue writes a value's alternatives on one line separated by "|".
    return tuple(part for text in texts for part in text.split("|"))


@cache
def generator_sentences() -> frozenset[str]:
    return frozenset(long_sentences(t for t in generator_texts() if not _PLACEHOLDER.search(t)))


@cache
def generator_templates() -> tuple[re.Pattern[str], ...]:
    """Each templated sentence as a regex, its placeholders matching anything. A template with
    fewer than two literal words ("I'm {x}.") would match nearly any sentence; its fills are
    finite, and every rendering of it is among the exact sentences above."""
    patterns = {}
    for text in generator_texts():
        for sentence in split_sentences(text):
            if not _PLACEHOLDER.search(sentence):
                continue
            normal = normalise(_PLACEHOLDER.sub(f" {_SLOT} ", sentence))
            if len(normal.replace(_SLOT, " ").split()) < 2:
                continue
            patterns[normal] = re.compile(".+".join(map(re.escape, normal.split(_SLOT))))
    return tuple(patterns.values())


@cache
def sampled_sentences() -> frozenset[str]:
    """What the seeded generators actually produce: profiles and scripted SFT conversations,
    user turns and teacher turns alike (with a preference change in some, a fact-stating first
    message in half)."""
    texts: list[str] = []
    profiles = generate_profiles(5000, seed=0)
    texts += [trait.text for profile in profiles for trait in profile.traits]
    for index, profile in enumerate(profiles[:300]):
        user = ScriptedUser(
            change_at_turn=3 if index % 3 == 0 else None,
            opener_fact_share=0.5 if index % 2 else 0.0,
            natural_opener_share=0.7,  # first messages in one run, as the SFT recipes draw them
            # corrections, forget and don't-store requests, other people, plain requests and
            # memory commands, as sft_memory_cpu draws them
            change_share=0.3,
            forget_share=0.3,
            private_share=0.2,
            third_party_share=0.15,
            request_share=0.25,
            memory_share=0.15,
        )
        turns = list(dialogues.simulate_dialogue(profile, user, seed=index, max_turns=8))
        texts += [m["content"] for m in turns[-1].prompt if m["role"] != "system"]
        texts += [turn.completion for turn in turns]
    return frozenset(long_sentences(texts))


# --- the set itself ------------------------------------------------------------------------


def test_transfer_set_loads_with_at_least_40_users_and_unique_ids() -> None:
    assert len(users()) >= 40
    assert len({user.id for user in users()}) == len(users())


def test_each_user_has_5_to_8_turns_then_a_short_second_conversation(hand_written: Path) -> None:
    for user in users(hand_written):
        first, second = user.conversations
        assert 5 <= len(first) <= 8, user.id
        assert 2 <= len(second) <= 3, user.id


def test_second_conversation_opens_with_a_neutral_message(hand_written: Path) -> None:
    personal = re.compile(r"\b(?:my|i'm|i am|i've|we're|our)\b", re.I)
    for user in users(hand_written):
        opener = user.conversations[1][0]
        assert not any(fact.matches(opener) for fact in user.gold), (user.id, opener)
        assert not personal.search(opener.replace("\u2019", "'")), (user.id, opener)


def test_coverage_of_what_real_users_do() -> None:
    def count(predicate: Callable[[TransferUser], object]) -> int:
        return sum(1 for user in users() if predicate(user))

    assert count(lambda u: any(f.turn == 1 for f in u.gold)) >= 15
    assert count(lambda u: any(f.in_request for f in u.gold)) >= 5
    assert count(lambda u: any(f.kind == "negation" for f in u.forbidden)) >= 10
    assert count(lambda u: any(f.about != USER for f in u.gold)) >= 8
    assert count(lambda u: any(f.kind == "outdated" for f in u.forbidden)) >= 5
    assert count(lambda u: not u.gold) >= 4
    assert count(lambda u: u.small_talk) >= 5


def test_every_gold_fact_is_grounded_in_the_turn_it_cites(hand_written: Path) -> None:
    for user in users(hand_written):
        for fact in user.gold:
            message = user.conversations[0][fact.turn - 1]
            keywords = {keyword for group in fact.any_of for keyword in group}
            assert any(keyword_match(message, ((k,),)) for k in keywords), (user.id, fact.fact)
            assert fact.turn not in user.small_talk, (user.id, fact.fact)


def test_canonical_wordings_match_their_own_keywords(hand_written: Path) -> None:
    """A model that stores exactly the canonical fact scores it: the keywords are not stricter
    than the wording they stand for."""
    for user in users(hand_written):
        for fact in (*user.gold, *user.forbidden):
            assert fact.matches(fact.fact), (user.id, fact.fact)


def test_no_forbidden_group_matches_the_users_gold(hand_written: Path) -> None:
    """Checked on the bare keywords: the negation guard of ForbiddenFact.matches would excuse
    every gold fact that says "not", and hide a group that is too loose."""
    for user in users(hand_written):
        for bad in user.forbidden:
            for fact in user.gold:
                assert not keyword_match(fact.fact, bad.any_of), (user.id, bad.fact, fact.fact)


def test_third_party_facts_name_the_party_in_every_group(hand_written: Path) -> None:
    for user in users(hand_written):
        for fact in user.gold:
            if fact.about == USER:
                continue
            names = PARTY_WORDS.get(fact.about, (fact.about,))
            for group in fact.any_of:
                assert any(keyword_match(k, tuple((n,) for n in names)) for k in group), (
                    user.id,
                    fact.fact,
                    group,
                )


# --- disjoint from the training data -------------------------------------------------------


def test_generator_enumeration_sees_the_catalogue_and_the_simulators() -> None:
    """Guards the tests below: an enumeration that silently found nothing would prove nothing."""
    sentences = generator_sentences()
    assert normalise("I'm allergic to peanuts.") in sentences
    assert normalise("Need a gift idea for a friend.") in sentences
    assert normalise("Honestly, I'm allergic to peanuts.") in sentences
    assert normalise("Ah, so you're allergic to peanuts.") in sentences
    assert any(p.fullmatch(normalise("I live in Reykjavik.")) for p in generator_templates())
    assert normalise("I'm allergic to peanuts.") in sampled_sentences()


def test_no_transfer_sentence_is_a_generator_phrasing(hand_written: Path) -> None:
    leaked = {
        s: where
        for s, where in transfer_sentences(hand_written).items()
        if s in generator_sentences()
    }
    assert leaked == {}


def test_no_transfer_sentence_fits_a_generator_template(hand_written: Path) -> None:
    leaked = {
        sentence: (where, pattern.pattern)
        for sentence, where in transfer_sentences(hand_written).items()
        for pattern in generator_templates()
        if pattern.fullmatch(sentence)
    }
    assert leaked == {}


def test_no_transfer_sentence_appears_in_sampled_training_data(hand_written: Path) -> None:
    sampled = sampled_sentences()
    leaked = {s: where for s, where in transfer_sentences(hand_written).items() if s in sampled}
    assert leaked == {}


def test_no_gold_fact_is_a_catalogue_phrasing(hand_written: Path) -> None:
    catalogue_texts = {
        normalise(text)
        for kind in KINDS.values()
        for value in kind.values
        for text in (value.name, *value.third, *value.first)
    }
    copied = [
        (user.id, fact.fact)
        for user in users(hand_written)
        for fact in user.gold
        if normalise(fact.fact) in catalogue_texts
    ]
    assert copied == []


def test_transfer_v2_shares_no_sentence_with_transfer_v1_or_the_dev_sets() -> None:
    """The held-out set is new people in new words: the other sets are read to make decisions,
    and a sentence shared with them would carry those decisions into it (as test_dev_set.py and
    test_updates_dev_set.py prove the dev sets share none with transfer v1). A failure names the
    other set's message only, so that reading it does not read the held-out set."""
    held_out = transfer_sentences(TRANSFER_V2)
    for other in (TRANSFER_V1, DEV_V1, UPDATES_DEV_V1):
        seen = transfer_sentences(other)
        shared = {s: where for s, where in seen.items() if s in held_out}
        assert shared == {}, other.name


# --- the loader ----------------------------------------------------------------------------


def _line(**changes: object) -> str:
    data = json.loads((ROOT / "training/eval_data/transfer_v1.jsonl").read_text().splitlines()[0])
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (_line(gold=[{"fact": "x", "any_of": [["x"]], "turn": 9}]), "turn 9"),
        (_line(gold=[{"fact": "x", "any_of": [], "turn": 1}]), "any_of"),
        (_line(forbidden=[{"fact": "x", "any_of": [["x"]], "kind": "nope"}]), "kind"),
        (_line(conversations=[["hi"]]), "2 conversations"),
        (_line(colour="blue"), "unknown field"),
        (json.dumps({"id": "x"}), "missing field 'conversations'"),
    ],
)
def test_a_malformed_line_raises_a_clear_error(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(_line() + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(TransferSetError, match=rf"bad\.jsonl:2\b.*{re.escape(message)}"):
        load_transfer_set(path)


def test_keywords_match_where_a_word_starts() -> None:
    assert keyword_match("Is allergic to PEANUTS", (("allerg", "peanut"),))
    assert not keyword_match("dislikes horror films", (("likes", "horror"),))
    assert keyword_match("doesn\u2019t drink", (("doesn't drink",),))


def test_a_forbidden_fact_is_not_matched_by_a_trait_that_denies_or_retires_it() -> None:
    drinks = ForbiddenFact("drinks alcohol", (("drinks", "alcohol"),), "negation")
    assert drinks.matches("drinks alcohol at weekends")
    assert not drinks.matches("never drinks alcohol")
    assert not drinks.matches("doesn\u2019t drink alcohol, and no longer drinks alcohol")
    bristol = ForbiddenFact("lives in Bristol", (("lives in", "Bristol"),), "outdated")
    assert bristol.matches("Lives in Bristol")
    assert not bristol.matches("no longer lives in Bristol")
