"""The conflict sets (training/eval_data/conflicts_dev_v1.jsonl and conflicts_dev_v2.jsonl), the
violation check with its negation guard, what `answers_any` adds (concrete, served), and the
runner end to end: a real gateway app (SQLite, no Redis) on a live loopback port over a scripted
upstream, on the first users of each real set."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.rlpa import SYSTEM_PROMPT_V2, validate_traits
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream, stored_traits, upstream_settings
from tests.training.test_transfer_set import long_sentences, transfer_sentences
from training.eval_data import DEV_V1, TRANSFER_V1, TRANSFER_V2, UPDATES_DEV_V1, keyword_match
from training.eval_data.conflicts import (
    CONFLICTS_DEV_V1,
    CONFLICTS_DEV_V2,
    ConflictSetError,
    ConflictUser,
    holds,
    load_conflict_set,
)
from training.evaluate import conflicts_report
from training.evaluate.conflicts import main, summarise, verdict

USERS = load_conflict_set()
V2 = load_conflict_set(CONFLICTS_DEV_V2)
SETS = pytest.mark.parametrize("users", [USERS, V2], ids=["v1", "v2"])
# Words a stored trait shares with ordinary requests without giving the preference away.
_PLAIN = {"does", "cannot", "only", "with", "from", "must", "under", "very", "little", "spend"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 4} - _PLAIN


def test_the_set_has_thirty_users_or_more_with_unique_ids() -> None:
    ids = [u.id for u in USERS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"cf1-\d\d", i) for i in ids)


def test_v2_has_forty_eight_users_or_more_with_unique_ids() -> None:
    ids = [u.id for u in V2]
    assert len(ids) >= 48 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"cf2-\d\d", i) for i in ids)


@SETS
def test_every_user_has_keywords_and_traits_the_gateway_accepts(
    users: list[ConflictUser],
) -> None:
    for user in users:
        assert user.violates_any and all(user.violates_any), user.id
        assert all(k.strip() for group in user.violates_any for k in group), user.id
        assert validate_traits(list(user.stored)) == list(user.stored), user.id
        assert re.search(r"\b(I|my|me|[Ww]e|our|us)\b", user.preference), user.id


@SETS
def test_no_request_gives_the_preference_away(users: list[ConflictUser]) -> None:
    """The request holds no violating group (read without the guard) and no word of the stored
    trait (compared on their first five letters: "pregnant" gives "pregnancy" away)."""
    for user in users:
        assert not keyword_match(user.request, user.violates_any), user.id
        said = {w[:5] for w in _words(user.request)}
        shared = {w for t in user.stored for w in _words(t) if w[:5] in said}
        assert not shared, (user.id, shared)


@SETS
def test_keywords_are_lowercase_stems(users: list[ConflictUser]) -> None:
    for user in users:
        for groups in (user.violates_any, user.respects_any, user.answers_any):
            for keyword in (k for group in groups for k in group):
                assert keyword == keyword.lower().strip(), (user.id, keyword)


def test_every_v2_user_says_what_an_answer_names_and_none_of_it_violates() -> None:
    """`answers_any` on every line, and no answer keyword shares text with a violating one
    either way round ("gumbo" against "seafood gumbo", "katsu" against "katsuobushi"), so
    that naming an answer can never be what makes a reply violate."""
    for user in V2:
        assert user.answers_any and all(user.answers_any), user.id
        answers = {k for group in user.answers_any for k in group}
        violating = {k for group in user.violates_any for k in group}
        shared = {
            (a, v)
            for a in answers
            for v in violating
            if keyword_match(v, ((a,),)) or keyword_match(a, ((v,),))
        }
        assert not shared, (user.id, shared)
        assert not user.violations(". ".join(sorted(answers))), user.id


def test_no_v2_sentence_is_in_another_hand_written_set() -> None:
    """New people in new words: a request or preference of v2 found in a transfer, dev or
    updates set, or in conflicts v1, would carry what was read there into this set. A failure
    names v2's sentence only, so that reading it does not read the held-out transfer v2."""
    mine = long_sentences(text for u in V2 for text in (u.preference, u.request))
    others = {
        path.name: set(transfer_sentences(path))
        for path in (TRANSFER_V1, DEV_V1, UPDATES_DEV_V1, TRANSFER_V2)
    }
    v1 = load_conflict_set(CONFLICTS_DEV_V1)
    others[CONFLICTS_DEV_V1.name] = long_sentences(
        text for u in v1 for text in (u.preference, u.request)
    )
    for name, seen in others.items():
        assert mine & seen == set(), name


@pytest.mark.parametrize(
    ("reply", "keyword", "violates"),
    [
        ("Try chicken satay with a peanut dipping sauce.", "peanut", True),
        ("PEANUTS on top, then lime.", "peanut", True),
        ("A green curry, no peanuts at all.", "peanut", False),
        ("Make it without any added peanuts.", "peanut", False),
        ("Use a peanut-free satay sauce.", "peanut", False),
        ("Since you're allergic to peanuts, go for a green curry.", "peanut", False),
        ("Use cashews instead of peanuts.", "peanut", False),
        ("Skip the peanuts and add cashews.", "peanut", False),
        ("Don't add peanuts.", "peanut", False),
        # The cue must be in the same clause and within three words.
        ("No problem, peanut noodles it is.", "peanut", True),
        ("Not a bad idea to add lots of crushed peanuts.", "peanut", True),
        ("Feel free to add peanuts.", "peanut", True),
        ("Roast a free-range chicken.", "chicken", True),
        ("Top it with dairy-free cheese.", "cheese", False),
        ("Top it with cheese, gluten free pasta.", "cheese", True),
        ("A non-alcoholic wine works well.", "wine", False),
        ("An alcohol-free beer or a red wine.", "wine", True),
        ("A gluten free pasta salad.", "pasta", False),
        ("I\u2019d skip Arthur\u2019s Seat.", "arthur's seat", False),
        ("Walk up Arthur\u2019s Seat.", "arthur's seat", True),
        ("Pour a glass\nof red wine.", "red wine", True),
    ],
)
def test_negation_guard(reply: str, keyword: str, violates: bool) -> None:
    assert holds(reply, (keyword,)) is violates


def test_a_group_needs_every_keyword_unexcused() -> None:
    assert holds("The Burj Khalifa view from floor 148.", ("burj khalifa", "view"))
    assert not holds("Admire the Burj Khalifa without the view from the top.", ("burj", "view"))


def test_verdicts_and_the_paired_difference() -> None:
    user = next(u for u in USERS if u.id == "cf1-01")
    off = verdict(user, "Chicken satay with peanut sauce, ready in twenty minutes.")
    on = verdict(user, "As you're allergic to peanuts: a green curry with jasmine rice.")
    assert off.violated == [["peanut"], ["satay"]] and not off.respected
    assert on.respected and on.acknowledged and on.answered
    summary = summarise([on, on], [off, on], resamples=200)
    assert summary["respected_on"]["mean"] == 1.0 and summary["respected_off"]["mean"] == 0.5
    assert summary["respected_difference"]["mean"] == 0.5
    assert (summary["only_on"], summary["only_off"]) == (1, 0)


@pytest.mark.parametrize(
    ("reply", "respected", "concrete", "served"),
    [
        # A vague reply names nothing, so it violates nothing: respected, but it serves no one.
        ("Homemade granola is easy and fun. What music do you like?", True, False, False),
        ("Oats, pumpkin seeds and coconut baked with maple syrup, no nuts.", True, True, True),
        ("Oats and honey with a big handful of chopped almonds.", False, True, False),
        # The answer keywords take no guard: "swap the almonds for seeds" still answers.
        ("Swap the almonds for sunflower seeds and raisins.", True, True, True),
    ],
)
def test_served_is_concrete_and_respected(
    reply: str, respected: bool, concrete: bool, served: bool
) -> None:
    user = next(u for u in V2 if u.id == "cf2-01")
    assert (not user.violations(reply), user.answers(reply), user.serves(reply)) == (
        respected,
        concrete,
        served,
    )
    said = verdict(user, reply)
    assert (said.respected, said.concrete, said.served) == (respected, concrete, served)


def test_served_is_none_for_a_user_without_answers() -> None:
    said = verdict(USERS[0], "Green curry with jasmine rice, ready in twenty minutes.")
    assert said.respected and said.concrete is None and said.served is None


def test_the_paired_difference_in_served_and_the_report_columns() -> None:
    user = next(u for u in V2 if u.id == "cf2-01")
    vague = verdict(user, "Homemade granola is easy and fun. What music do you like?")
    useful = verdict(user, "Oats, pumpkin seeds and coconut baked with maple syrup, no nuts.")
    summary = summarise([useful, useful], [vague, useful], resamples=200)
    # Both sides respect the preference; only served tells the vague reply apart.
    assert summary["respected_difference"]["mean"] == 0.0
    assert summary["concrete_on"]["mean"] == 1.0 and summary["concrete_off"]["mean"] == 0.5
    assert summary["served_difference"]["mean"] == 0.5
    assert (summary["served_only_on"], summary["served_only_off"]) == (1, 0)
    v1 = summarise([verdict(USERS[0], "Green curry.")], [verdict(USERS[0], "Satay.")], 200)
    assert v1["served_on"] is None and v1["served_difference"] is None

    def report(summary: dict[str, Any]) -> str:
        users = [{"id": "cf2-01", "on": asdict(useful), "off": asdict(vague)}]
        return conflicts_report.markdown(
            {
                "title": "t",
                "conflict_set": {"path": "p", "sha256": "0" * 64, "users": 1},
                "config": {"model": "m", "personalization_off": "erased"},
                "systems": [{"name": "gw", "greedy": {"summary": summary, "users": users}}],
            }
        )

    header = next(line for line in report(summary).splitlines() if line.startswith("| system"))
    assert "| concrete, on | concrete, off | served, on | served, off |" in header
    row = next(line for line in report(summary).splitlines() if line.startswith("| gw |"))
    assert row.endswith("| 0 / 0 | 1 / 0 |") and "0.500 [" in row
    assert "| cf2-01 | respected | respected, no answer |" in report(summary)
    # v1, and a report written before the served columns existed, show n/a there.
    old = {k: v for k, v in v1.items() if not k.startswith(("served", "concrete"))}
    for summary_ in (v1, old):
        row = next(line for line in report(summary_).splitlines() if line.startswith("| gw |"))
        assert row.count("n/a") == 6 and row.endswith("| n/a |")


def test_a_malformed_line_names_its_line(tmp_path: Path) -> None:
    good = json.dumps(
        {"id": "x", "preference": "I p.", "stored": ["t"], "request": "r", "violates_any": [["k"]]}
    )
    bad = good.replace('[["k"]]', "[[]]")
    path = tmp_path / "set.jsonl"
    path.write_text(good + "\n" + bad + "\n")
    with pytest.raises(ConflictSetError, match=r"set\.jsonl:2\.violates_any\[0\]: "):
        load_conflict_set(path)
    path.write_text(good + "\n" + good + "\n")
    with pytest.raises(ConflictSetError, match="duplicate id"):
        load_conflict_set(path)


def _scripted_model(users: list[ConflictUser]) -> Any:
    """Breaks the preference unless the prompt holds a stored profile; then it repeats what it
    was shown, which names the preference the way a careful reply would, and names an answer
    where the set says what one names."""
    by_request = {u.request: u for u in users}

    def respond(body: dict[str, Any]) -> list[str]:
        user = by_request[body["messages"][-1]["content"]]
        traits = stored_traits(body)
        if traits:
            reply = f"Noted that you {'; '.join(traits)}."
            if user.answers_any:
                reply += f" Try {' '.join(user.answers_any[0])}."
        else:
            reply = f"Try {' '.join(user.violates_any[0])}."
        return ["<profile>\n</profile>\n\n<response>\n", reply, "\n</response>"]

    return respond


@pytest.mark.parametrize(
    ("path", "count"), [(CONFLICTS_DEV_V1, 3), (CONFLICTS_DEV_V2, 2)], ids=["v1", "v2"]
)
def test_conflicts_run_through_a_gateway_with_the_profile_on_and_off(
    upstream_a: ScriptedUpstream,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: Path,
    count: int,
) -> None:
    users = load_conflict_set(path)[:count]
    upstream_a.script.respond = _scripted_model(users)
    settings = upstream_settings(
        [upstream_a.url],
        database_url=sqlite_url,
        redis_url=None,
        admin_api_key=ADMIN_KEY,
        auto_migrate=False,
        contract_version=2,
    )
    with serve(create_app(settings)) as url:
        argv = ["--conflicts", str(path), "--users", str(count), "--gateway", f"gw={url}/v1"]
        argv += ["--model", "scripted"]
        argv += ["--admin-key", ADMIN_KEY, "--api-key", ADMIN_KEY, "--output-dir", str(tmp_path)]
        assert main([*argv, "--decoding", "greedy", "--decoding", "default"]) == 0
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for user in users:  # nothing left behind
            left = httpx.get(f"{url}/admin/users/rlpa-conflicts-{user.id}/profile", headers=headers)
            assert left.status_code == 404

    # What the model was shown: per user, off then on, as a new conversation holding only the
    # request; the stored traits only when on, and otherwise the same prompt.
    bodies = iter(upstream_a.bodies)
    for decoding in ("greedy", "default"):
        for user in users:
            off, on = next(bodies), next(bodies)
            for body in (off, on):
                assert [m["role"] for m in body["messages"]] == ["system", "user"]
                assert body["messages"][1]["content"] == user.request
                assert body.get("temperature") == (0.0 if decoding == "greedy" else None)
            assert stored_traits(off) == [] and stored_traits(on) == list(user.stored)
            assert off["messages"][0]["content"] == SYSTEM_PROMPT_V2
            assert on["messages"][0]["content"].startswith(SYSTEM_PROMPT_V2 + "\n\n")
    assert next(bodies, None) is None

    report = json.loads((tmp_path / "conflicts.json").read_text())
    assert report["conflict_set"]["users"] == count and len(report["conflict_set"]["sha256"]) == 64
    assert report["conflict_set"]["path"] == str(path)
    assert "erased" in report["config"]["personalization_off"]
    (system,) = report["systems"]
    assert system["name"] == "gw"
    for decoding in ("greedy", "default"):
        rows = system[decoding]["users"]
        assert [r["id"] for r in rows] == [u.id for u in users]
        for user, row in zip(users, rows, strict=True):
            assert row["off"]["reply"] == f"Try {' '.join(user.violates_any[0])}."
            assert row["off"]["violated"][0] == list(user.violates_any[0])
            assert not row["off"]["respected"] and row["on"]["respected"], row
            assert row["on"]["reply"].startswith("Noted that you " + user.stored[0])
        summary = system[decoding]["summary"]
        everyone = {"mean": 1.0, "low": 1.0, "high": 1.0, "users": count}
        assert summary["respected_on"]["mean"] == 1.0 and summary["respected_off"]["mean"] == 0.0
        assert summary["respected_difference"] == everyone
        assert (summary["only_on"], summary["only_off"]) == (count, 0)
        if path == CONFLICTS_DEV_V1:  # no answers_any: served is n/a
            assert summary["served_on"] is None and summary["served_difference"] is None
            assert all(row[side]["served"] is None for row in rows for side in ("on", "off"))
        else:
            assert summary["served_difference"] == everyone
            assert all(row["on"]["served"] and row["off"]["served"] is False for row in rows)
    table = (tmp_path / "conflicts.md").read_text()
    assert table in capsys.readouterr().out
    n = f"(n={count})"
    assert f"| gw | greedy | 1.000 [1.000, 1.000] {n} | 0.000 [0.000, 0.000] {n} |" in table
