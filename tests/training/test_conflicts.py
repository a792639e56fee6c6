"""The conflict set (training/eval_data/conflicts_dev_v1.jsonl), its violation check with the
negation guard, and the runner end to end: a real gateway app (SQLite, no Redis) on a live
loopback port over a scripted upstream, on the first three users of the real set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.rlpa import SYSTEM_PROMPT_V2, validate_traits
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream, stored_traits, upstream_settings
from training.eval_data import keyword_match
from training.eval_data.conflicts import (
    ConflictSetError,
    ConflictUser,
    holds,
    load_conflict_set,
)
from training.evaluate.conflicts import main, summarise, verdict

USERS = load_conflict_set()
# Words a stored trait shares with ordinary requests without giving the preference away.
_PLAIN = {"does", "cannot", "only", "with", "from", "must", "under", "very", "little", "spend"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 4} - _PLAIN


def test_the_set_has_thirty_users_or_more_with_unique_ids() -> None:
    ids = [u.id for u in USERS]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"cf1-\d\d", i) for i in ids)


def test_every_user_has_keywords_and_traits_the_gateway_accepts() -> None:
    for user in USERS:
        assert user.violates_any and all(user.violates_any), user.id
        assert all(k.strip() for group in user.violates_any for k in group), user.id
        assert validate_traits(list(user.stored)) == list(user.stored), user.id
        assert re.search(r"\b(I|my|me|[Ww]e|our|us)\b", user.preference), user.id


def test_no_request_gives_the_preference_away() -> None:
    """The request holds no violating group (read without the guard) and no word of the stored
    trait (compared on their first five letters: "pregnant" gives "pregnancy" away)."""
    for user in USERS:
        assert not keyword_match(user.request, user.violates_any), user.id
        said = {w[:5] for w in _words(user.request)}
        shared = {w for t in user.stored for w in _words(t) if w[:5] in said}
        assert not shared, (user.id, shared)


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
    was shown, which names the preference the way a careful reply would."""
    breaking = {u.request: " ".join(u.violates_any[0]) for u in users}

    def respond(body: dict[str, Any]) -> list[str]:
        request = body["messages"][-1]["content"]
        traits = stored_traits(body)
        reply = f"Noted that you {'; '.join(traits)}." if traits else f"Try {breaking[request]}."
        return ["<profile>\n</profile>\n\n<response>\n", reply, "\n</response>"]

    return respond


def test_conflicts_run_through_a_gateway_with_the_profile_on_and_off(
    upstream_a: ScriptedUpstream,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    users = USERS[:3]
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
        argv = ["--users", "3", "--gateway", f"gw={url}/v1", "--model", "scripted"]
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
    assert report["conflict_set"]["users"] == 3 and len(report["conflict_set"]["sha256"]) == 64
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
        assert summary["respected_on"]["mean"] == 1.0 and summary["respected_off"]["mean"] == 0.0
        assert summary["respected_difference"] == {"mean": 1.0, "low": 1.0, "high": 1.0, "users": 3}
        assert (summary["only_on"], summary["only_off"]) == (3, 0)
    table = (tmp_path / "conflicts.md").read_text()
    assert table in capsys.readouterr().out
    assert "| gw | greedy | 1.000 [1.000, 1.000] (n=3) | 0.000 [0.000, 0.000] (n=3) |" in table
