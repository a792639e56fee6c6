"""The model-free notebooks (training/evaluate/baselines.py) and how `rlpa eval --transfer` runs
them: offline, beside every model, with nothing of theirs read as a reply."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from training import cli
from training.eval_data import DEV_V1, load_transfer_set
from training.evaluate.agents import build_agent
from training.evaluate.baselines import EchoAgent, first_statement
from training.evaluate.config import SystemConfig
from training.evaluate.transfer import UserMetrics
from training.evaluate.transfer_protocol import run_user, with_notebooks


@pytest.mark.parametrize(
    ("message", "first"),
    [
        ("I'm a nurse. Any ideas for dinner?", "I'm a nurse."),
        ("what can I cook?? quick pls", "what can I cook??"),
        ("no capitals no full stop", "no capitals no full stop"),
        ("line one\nline two. more", "line one"),
        ("Version 3.5 is out. Thoughts?", "Version 3.5 is out."),
        ("  Hi!  I'm Sam.", "Hi!"),
    ],
)
def test_echo1_keeps_a_message_up_to_its_first_sentence_end_or_newline(
    message: str, first: str
) -> None:
    assert first_statement(message) == first


def test_echo_keeps_every_user_message_in_order_and_replies_nothing() -> None:
    agent = EchoAgent("echo")
    history = [{"role": "user", "content": "I'm vegan. Ideas?"}]
    assert agent.turn("u", history) == ("", ["I'm vegan. Ideas?"])
    history += [{"role": "assistant", "content": ""}, {"role": "user", "content": "Thanks!"}]
    assert agent.turn("u", history) == ("", ["I'm vegan. Ideas?", "Thanks!"])
    assert agent.turn("v", history[-1:]) == ("", ["Thanks!"])  # users are kept apart
    agent.reset("u")
    assert agent.turn("u", [{"role": "user", "content": "hi again"}]) == ("", ["hi again"])


def test_the_transfer_protocol_runs_a_notebook_like_any_agent() -> None:
    user = load_transfer_set(DEV_V1)[0]
    agent = build_agent(SystemConfig(name="echo1", kind="echo1"))
    turns = run_user(agent, user, "eval-u")
    first, opener = user.conversations[0], user.conversations[1][0]
    statements = [first_statement(m) for m in first]
    assert [t.profile for t in turns[:-1]] == [statements[:k] for k in range(1, len(first) + 1)]
    assert turns[-1].profile == [*statements, first_statement(opener)]  # conversation 2 adds it


def test_the_notebooks_join_every_system_list_once() -> None:
    model = SystemConfig(name="sft", kind="gateway", base_url="http://localhost:1")
    assert [(s.name, s.kind) for s in with_notebooks([model])] == [
        ("echo", "echo"),
        ("echo1", "echo1"),
        ("sft", "gateway"),
    ]
    mine = SystemConfig(name="my-echo", kind="echo")
    assert [s.name for s in with_notebooks([mine])] == ["echo1", "my-echo"]
    with pytest.raises(ValueError, match="notebooks'"):
        with_notebooks([SystemConfig(name="echo", kind="gateway")])


def test_transfer_with_no_system_runs_the_notebooks_offline_and_reports_every_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "transfer", str(DEV_V1), "--transfer-users", "4", "--output-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "transfer.json").read_text())
    assert [(s["name"], s["kind"]) for s in report["systems"]] == [
        ("echo", "echo"),
        ("echo1", "echo1"),
    ]
    assert report["against_notebooks"] == {}
    fields = {f.name for f in dataclasses.fields(UserMetrics)}
    for system in report["systems"]:
        assert len(system["users"]) == 4
        for user in system["users"]:
            assert fields <= set(user)  # every per-user metric, the new ones included
            assert user["response"] is None and user["requests_answered"] is None  # no replies
        assert system["metrics"]["response"] is None
        assert system["metrics"]["f1_one_to_one"]["users"] >= 1
        assert system["counts"]["misattributed"] >= 0
    table = (tmp_path / "transfer.md").read_text()
    assert table in capsys.readouterr().out
    assert "| echo | " in table and "## Against the notebooks" in table
    assert "F1 (one-to-one)" in table and "lenient F1 (keyword)" in table
