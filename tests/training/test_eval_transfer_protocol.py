"""`rlpa eval --transfer` end to end: a real gateway app (SQLite, no Redis) on a live loopback
port, over a scripted upstream model that stores every user message as a trait, on the first
three users of the real transfer set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream, remembering, upstream_settings
from training import cli
from training.eval_data import load_transfer_set
from training.evaluate.transfer import (
    METRICS,
    PAIRED,
    Exchange,
    UserProfiles,
    summarise,
    user_metrics,
)


def _chat(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]


def test_transfer_eval_plays_both_conversations_through_a_gateway_and_reports_every_metric(
    upstream_a: ScriptedUpstream,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upstream_a.script.respond = remembering  # keeps the stored traits, adds the last message
    settings = upstream_settings(
        [upstream_a.url],
        database_url=sqlite_url,
        redis_url=None,
        admin_api_key=ADMIN_KEY,
        auto_migrate=False,
        contract_version=2,
    )
    users = load_transfer_set()[:3]
    with serve(create_app(settings)) as url:
        argv = ["eval", "transfer", "--transfer-users", "3", "--gateway", f"gw={url}/v1"]
        argv += ["--model", "scripted", "--api-key", ADMIN_KEY, "--output-dir", str(tmp_path)]
        assert cli.main(argv) == 0

    report = json.loads((tmp_path / "transfer.json").read_text())
    assert report["transfer_set"]["users"] == 3 and len(report["transfer_set"]["sha256"]) == 64
    # The notebooks ran beside the gateway, and it is compared with each on the same users.
    notebooks = [s["name"] for s in report["systems"][:2]]
    assert notebooks == ["echo", "echo1"]
    system = report["systems"][2]
    assert set(report["against_notebooks"]) == {"gw"}
    against = report["against_notebooks"]["gw"]
    assert set(against) == set(notebooks) and set(against["echo"]) == set(PAIRED)
    # This upstream stores each message as the echo does: nothing between them to tell apart.
    assert against["echo"]["f1_one_to_one"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "users": 2}
    assert [u["user"] for u in system["users"]] == [u.id for u in users]

    # What the upstream was asked: conversation 1 as a growing history with the gateway's
    # replies, then conversation 2 as a new conversation holding only its first message.
    asked = iter(upstream_a.bodies)
    for user in users:
        history: list[tuple[str, str]] = []
        for message in user.conversations[0]:
            history.append(("user", message))
            assert _chat(next(asked)) == history
            history.append(("assistant", "ok"))
        assert _chat(next(asked)) == [("user", user.conversations[1][0])]
    assert next(asked, None) is None

    # What was read back: the store after every turn (this model stores each message), and the
    # profile kept into conversation 2 (contract v2: traits not mentioned are kept).
    expected = []
    for user, run in zip(users, system["users"], strict=True):
        said = list(user.conversations[0])
        after = [said[:k] for k in range(1, len(said) + 1)]
        final = [*said, user.conversations[1][0]]
        assert [t["profile"] for t in run["turns"]] == [*after, final]
        assert [(t["conversation"], t["turn"]) for t in run["turns"]][-2:] == [
            (1, len(said)),
            (2, 1),
        ]
        exchanges = [Exchange(1, k, m, "ok") for k, m in enumerate(said, 1)]
        exchanges.append(Exchange(2, 1, user.conversations[1][0], "ok"))
        expected.append(user_metrics(UserProfiles(user, after, final, exchanges)))

    summary = summarise(expected, seed=0)
    for name in METRICS:
        estimate, expected_estimate = system["metrics"][name], summary[name]
        if expected_estimate is None:  # nobody here corrects, forgets or moves anything
            assert estimate is None, name
            assert name in ("update_accuracy", "forget_compliance", "stale_rate"), name
            continue
        assert estimate == expected_estimate.to_dict()
        assert estimate["low"] <= estimate["mean"] <= estimate["high"]
    assert system["metrics"]["retention"]["mean"] == 1.0
    assert system["metrics"]["precision"]["users"] == 3  # the user with no gold counts here
    assert system["metrics"]["recall"]["users"] == 2  # ... and not here
    assert system["metrics"]["response"]["mean"] == 0.0  # "ok" answers nothing

    table = (tmp_path / "transfer.md").read_text()
    assert table in capsys.readouterr().out
    assert "| system | F1 (one-to-one) | precision (one-to-one) | recall (one-to-one) |" in table
    assert "\n| gw | " in table and "| metric | gw \u2212 echo | gw \u2212 echo1 |" in table


def test_transfer_flags_parse_into_the_one_config() -> None:
    _, config = cli.parse(["eval", "transfer", "--gateway", "http://localhost:8000"])
    assert config.transfer_path is not None and config.transfer_path.endswith("transfer_v1.jsonl")
    assert config.transfer_users is None and config.bootstrap_resamples == 2000
    _, config = cli.parse(["eval", "transfer", "my.jsonl", "--transfer-users", "2"])
    assert (config.transfer_path, config.transfer_users) == ("my.jsonl", 2)
    assert cli.parse(["eval", "run"])[1].transfer_path is None


def test_a_transfer_run_without_a_recipe_decodes_greedily_like_the_card() -> None:
    # Readings of the transfer or dev set are compared across runs: a sampled one cannot be.
    _, config = cli.parse(["eval", "transfer", "dev.jsonl", "--gateway", "http://localhost:8000"])
    assert config.systems[0].do_sample is False
    _, config = cli.parse(["eval", "run", "--gateway", "http://localhost:8000"])  # recipe's
    assert config.systems[0].do_sample is True
    with pytest.raises(SystemExit):  # a stage card is `run`'s and `compare`'s, not `transfer`'s
        cli.parse(["eval", "transfer", "--card", "eval.json", "--gateway", "http://localhost:1"])
