"""`rlpa eval` end to end on tiny checkpoints, the checkpoint agent's prompting, the gateway
agent's wire shape (against an in-test fake gateway), the config and the merged report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from server.rlpa import render_output
from training import cli
from training.data import Profile, Trait
from training.evaluate import EvalConfig
from training.evaluate.agents import CheckpointAgent, GatewayAgent
from training.evaluate.protocol import load_eval_profiles, run_conversation
from training.recipe import load_config
from training.rewards import LexicalMatcher, OfflineResponseJudge
from training.simulators import ScriptedUser

TINY_RECIPE = Path(__file__).parents[2] / "training" / "recipes" / "eval_tiny.yaml"
PROFILE = Profile(
    "p1",
    [Trait("pet", "cat", "has a cat"), Trait("city", "Oslo", "lives in Oslo")],
)


@pytest.fixture(scope="module")
def tiny_adapter_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT adapter on the tiny llama, stamped like an SFT/RL output, naming its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.export import write_rlpa_json

    path = tmp_path_factory.mktemp("tiny-adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(str(path), save_embedding_layers=False)
    write_rlpa_json(
        path,
        export_format="hf-adapter",
        base_model=str(tiny_llama_dir),
        recipe={},
        eval_summary=None,
    )
    return path


def test_eval_of_tiny_checkpoints_writes_json_markdown_and_png(
    tiny_llama_dir: Path, tiny_adapter_dir: Path, tmp_path: Path
) -> None:
    argv = ["--recipe", str(TINY_RECIPE), "--output-dir", str(tmp_path)]
    argv += [
        "--checkpoint",
        f"merged={tiny_llama_dir}",
        "--checkpoint",
        f"adapter={tiny_adapter_dir}",
    ]
    assert cli.main(["eval", "run", *argv]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["name"] for s in results["systems"]] == ["merged", "adapter"]
    assert results["config"]["users"] == 2 and results["config"]["turns"] == 2
    for system in results["systems"]:
        assert len(system["conversations"]) == 2
        assert all(len(c["turns"]) == 2 for c in system["conversations"])
        turn = system["conversations"][0]["turns"][0]
        assert set(turn) >= {"user", "reply", "inferred", "true_profile", "profile_f1"}
        assert 0.0 <= turn["profile_f1"] <= 1.0 and turn["response_score"] in (0.0, 1.0)
        assert [t["turn"] for t in system["per_turn"]] == [1, 2]
        summary = system["summary"]
        assert len(summary["alignment"]["by_turn"]) == len(summary["profile_f1"]["by_turn"]) == 2
        assert set(summary["alignment"]) >= {"mean", "first", "last", "n_ir", "n_r2"}
    # Both systems met the same held-out users.
    ids = [[c["profile_id"] for c in s["conversations"]] for s in results["systems"]]
    assert ids[0] == ids[1]

    card = json.loads((tmp_path / "summary.json").read_text())
    assert all("conversations" not in s for s in card["systems"])
    table = (tmp_path / "report.md").read_text()
    assert "| system | profile F1 (mean / turn 1 / turn R) | AVG | N-IR | N-R² |" in table
    assert "\n| merged | " in table and "\n| adapter | " in table

    import matplotlib.image

    png = tmp_path / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > height > 100  # two subplots side by side


def test_compare_merges_earlier_results_into_one_table(tmp_path: Path) -> None:
    def results(name: str, al: list[float]) -> dict[str, Any]:
        f1 = {"by_turn": [0.1, 0.2], "mean": 0.15, "first": 0.1, "last": 0.2}
        summary = {
            "profile_f1": {**f1, "n_ir": 1.0, "n_r2": None},
            "alignment": {
                "by_turn": al,
                "mean": sum(al) / 2,
                "first": al[0],
                "last": al[-1],
                "n_ir": 1.0,
                "n_r2": 1.0,
            },
            "response_score": 0.5,
        }
        return {"title": "t", "systems": [{"name": name, "summary": summary}]}

    paths = []
    for name, al in (("base", [0.0, 100.0]), ("rlpa", [50.0, 100.0])):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(results(name, al)))
    out = tmp_path / "both"
    argv = ["eval", "compare", *map(str, paths), "--output-dir", str(out), "--title", "both"]
    assert cli.main([*argv, "--card", str(out / "eval.json")]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in merged["systems"]] == ["base", "rlpa"]
    table = (out / "report.md").read_text()
    assert (
        table.startswith("# both")
        and "| rlpa | 0.150 / 0.100 / 0.200 | 75.0 | 1.000 | 1.000 | 0.500 |" in table
    )
    assert (out / "report.png").exists()
    card = json.loads((out / "eval.json").read_text())
    assert list(card["stages"]) == ["base", "rlpa"]
    assert card["stages"]["rlpa"]["profile_f1"] == 0.15
    assert card["stages"]["rlpa"]["response_score"] == 0.5
    assert card["stages"]["base"]["alignment_avg"] == 50.0


def test_only_runs_the_named_systems_and_the_card_names_stages(
    tiny_llama_dir: Path, tiny_adapter_dir: Path, tmp_path: Path
) -> None:
    argv = ["eval", "run", "--recipe", str(TINY_RECIPE), "--output-dir", str(tmp_path)]
    argv += ["--users", "1", "--checkpoint", f"sft={tiny_llama_dir}"]
    argv += ["--checkpoint", f"rl={tiny_adapter_dir}"]
    assert cli.main([*argv, "--only", "rl", "--card", str(tmp_path / "card" / "eval.json")]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["name"] for s in results["systems"]] == ["rl"]
    card = json.loads((tmp_path / "card" / "eval.json").read_text())
    assert list(card["stages"]) == ["rl"]
    stage = card["stages"]["rl"]
    assert stage["profile_f1"] == results["systems"][0]["summary"]["profile_f1"]["mean"]
    assert 0.0 <= stage["response_score"] <= 1.0 and len(stage["profile_f1_by_turn"]) == 2
    assert card["settings"]["users"] == 1 and card["settings"]["split"] == "test"
    assert "conversations" not in json.dumps(card)

    with pytest.raises(ValueError, match="--only base: no such system"):
        cli.parse([*argv, "--only", "base"])


def test_a_checkpoint_is_prompted_as_its_rlpa_json_says_and_without_one_as_contract_1(
    tiny_llama_dir: Path, tiny_adapter_dir: Path
) -> None:
    from training.evaluate.agents import build_agent
    from training.evaluate.config import SystemConfig

    def version(path: Path, pinned: int | None = None) -> int:
        system = SystemConfig(name="s", path=str(path), contract_version=pinned)
        agent = build_agent(system)
        assert isinstance(agent, CheckpointAgent)
        return agent.version

    assert version(tiny_adapter_dir) == 2  # its rlpa.json
    assert version(tiny_llama_dir) == 1  # none: server.rlpa.checkpoint's rule
    assert version(tiny_llama_dir, pinned=2) == 2  # a bare HF base, pinned to the latest


class EchoModel:
    """Stands in for a model: 'generates' the given outputs in turn, keeps the prompts."""

    def __init__(self, tokenizer: Any, outputs: list[str]) -> None:
        import torch

        self.device = torch.device("cpu")
        self.tokenizer, self.outputs = tokenizer, outputs
        self.prompts: list[str] = []

    def generate(self, input_ids: Any, **_: Any) -> Any:
        import torch

        self.prompts.append(self.tokenizer.decode(input_ids[0]))
        new = self.tokenizer(self.outputs.pop(0), add_special_tokens=False, return_tensors="pt")
        return torch.cat([input_ids, new.input_ids], dim=1)


@pytest.mark.parametrize("version", [1, 2])
def test_checkpoint_agent_shows_the_model_its_own_last_profile(
    smollm2_tokenizer: Any, version: int
) -> None:
    outputs = [render_output(["has a cat"], "Cats are great. Name?"), "no tags at all"]
    model = EchoModel(smollm2_tokenizer, outputs)
    agent = CheckpointAgent("echo", model, smollm2_tokenizer, version=version)
    agent.reset("u")
    history = [{"role": "user", "content": "I have a cat."}]
    assert agent.turn("u", history) == ("Cats are great. Name?", ["has a cat"])
    history += [
        {"role": "assistant", "content": "Cats are great. Name?"},
        {"role": "user", "content": "Tom."},
    ]
    # No profile block this time: the last one stands, as in the gateway.
    assert agent.turn("u", history) == ("no tags at all", ["has a cat"])
    assert "has a cat" not in model.prompts[0]
    if version == 1:  # the stored profile as the model's own last block
        assert (
            "<profile>\n- has a cat\n</profile>\n\n<response>\nCats are great." in model.prompts[1]
        )
    else:  # the stored profile as a list in the system message, nothing to copy
        assert "What you know about this user:\n- has a cat<|im_end|>" in model.prompts[1]
    agent.reset("u")
    assert agent._profiles == {}


class FakeGateway:
    """Just enough of the gateway's HTTP API to check what the agent sends and reads."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.stored: dict[str, list[str]] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.decode()
        if request.method == "POST" and path == "/v1/chat/completions":
            body = json.loads(request.content)
            self.stored[body["user"]] = [f"said {len(body['messages'])} messages"]
            message = {"role": "assistant", "content": "Tell me more about that?"}
            rlpa = {"profile": self.stored[body["user"]], "version": 1}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return httpx.Response(200, json={"choices": [choice], "rlpa": rlpa})
        user = unquote(path.split("/")[3])
        if request.method == "DELETE":
            return httpx.Response(204 if self.stored.pop(user, None) else 404)
        if user not in self.stored:
            return httpx.Response(404, json={"error": {"message": "no user"}})
        return httpx.Response(200, json={"user": user, "version": 1, "traits": self.stored[user]})

    def agent(self, **options: Any) -> GatewayAgent:
        client = httpx.Client(transport=httpx.MockTransport(self.handle))
        return GatewayAgent("gw", "http://gw.test/v1", "rlpa", "chat-key", client=client, **options)


@pytest.mark.parametrize("source", ["response", "admin"])
def test_gateway_agent_speaks_the_gateway_api(source: str) -> None:
    gateway = FakeGateway()
    agent = gateway.agent(admin_api_key="admin-key", profile_source=source)
    agent.reset("eval/u 1")  # never seen: a 404 is fine
    history = [{"role": "user", "content": "hi"}]
    assert agent.turn("eval/u 1", history) == ("Tell me more about that?", ["said 1 messages"])

    erase, chat = gateway.requests[0], gateway.requests[1]
    assert erase.method == "DELETE"
    assert erase.url.raw_path == b"/admin/users/eval%2Fu%201"
    assert erase.headers["authorization"] == "Bearer admin-key"
    assert chat.url.path == "/v1/chat/completions"
    assert chat.headers["authorization"] == "Bearer chat-key"
    body = json.loads(chat.content)
    assert body["user"] == "eval/u 1" and body["messages"] == history and body["model"] == "rlpa"
    assert body["rlpa"] == {"return_profile": True} and body["max_tokens"] == 160
    reads = [r for r in gateway.requests if r.method == "GET"]
    assert len(reads) == (source == "admin")
    if reads:
        assert reads[0].url.raw_path == b"/admin/users/eval%2Fu%201/profile"
    agent.close()


def test_gateway_agent_reads_an_unknown_user_as_an_empty_profile() -> None:
    assert FakeGateway().agent().stored_profile("nobody") == []


def test_a_conversation_with_the_gateway_is_scored_every_turn() -> None:
    gateway = FakeGateway()
    gateway.stored["rlpa-eval-p1"] = ["left over from an earlier run"]
    conversation = run_conversation(
        gateway.agent(),
        ScriptedUser(),
        PROFILE,
        user_id="rlpa-eval-p1",
        turns=3,
        seed=0,
        matcher=LexicalMatcher(),
        judge=OfflineResponseJudge(),
    )
    assert gateway.requests[0].method == "DELETE"  # the earlier run's profile is erased first
    assert [t.turn for t in conversation.turns] == [1, 2, 3]
    assert [t.inferred for t in conversation.turns] == [
        ["said 1 messages"],
        ["said 3 messages"],
        ["said 5 messages"],
    ]
    assert all(
        t.profile_f1 == 0.0 and t.true_profile == PROFILE.texts() for t in conversation.turns
    )
    assert all(t.response_score in (0.0, 1.0) for t in conversation.turns)


def test_flags_add_named_systems_to_the_recipe() -> None:
    _, config = cli.parse(
        [
            "eval",
            "run",
            "--recipe",
            "eval_tiny",  # a shipped recipe, by name
            "--checkpoint",
            "sft=runs/sft/adapter",
            "--checkpoint",
            "runs/rl/final/",
            "--gateway",
            "http://localhost:8000",
            "--model",
            "m",
            "--turns",
            "3",
        ]
    )
    assert [(s.name, s.kind) for s in config.systems] == [
        ("sft", "checkpoint"),
        ("final", "checkpoint"),
        ("localhost:8000", "gateway"),
    ]
    assert config.systems[0].path == "runs/sft/adapter" and config.systems[2].model == "m"
    assert config.systems[0].max_new_tokens == 16  # the recipe's system_defaults
    assert config.turns == 3 and config.users == 2


def test_config_rejects_unknown_settings_and_masks_secrets() -> None:
    with pytest.raises(ValueError, match="did you mean turns"):
        load_config(EvalConfig, None, {"turn": 3})
    with pytest.raises(ValueError, match="temprature"):
        load_config(EvalConfig, None, {"systems": [{"name": "a", "temprature": 0.1}]})
    config = load_config(
        EvalConfig,
        None,
        {
            "systems": [{"name": "gw", "kind": "gateway", "api_key": "sk-secret"}],
            "system_defaults": {"admin_api_key": "sk-admin"},
            "judge": "llm",
            "endpoint_url": "http://j/v1",
            "endpoint_model": "j",
            "endpoint_api_key_env": "RLPA_JUDGE_KEY",  # the judge's key: named, never written
        },
    )
    recorded = json.dumps(config.to_dict())
    assert "sk-secret" not in recorded and "sk-admin" not in recorded
    assert config.systems[0].admin_api_key == "sk-admin"  # the defaults fill every system
    endpoint = config.endpoint()
    assert endpoint is not None and (endpoint.model, endpoint.api_key_env) == (
        "j",
        "RLPA_JUDGE_KEY",
    )


def test_held_out_users_are_the_test_split_training_never_sees(tmp_path: Path) -> None:
    from training.data import write_profiles
    from training.dialogues import training_profiles

    config = EvalConfig(num_profiles=40, profile_seed=3, users=None)
    held_out = {p.facts() for p in load_eval_profiles(config)}
    assert held_out == {p.facts() for p in training_profiles(None, 40, 3, "test")}
    assert not held_out & {p.facts() for p in training_profiles(None, 40, 3, "train")}

    path = tmp_path / "aloe.jsonl"
    write_profiles(path, [PROFILE, Profile("p2", [Trait("other", "x", "likes jazz")])])
    chosen = load_eval_profiles(EvalConfig(profiles_path=str(path), split="all", users=1))
    assert [p.id for p in chosen] == ["p1"]
