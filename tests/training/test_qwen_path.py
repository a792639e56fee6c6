"""The Qwen path on CPU: the `sft_qwen_gpu` and `rl_qwen_gpu` recipes (scaled down, no vLLM,
offline scorers) on a tiny random Qwen2 with SmolLM2's tokenizer, then `rlpa export` to a merged
HF checkpoint and a PEFT adapter, both loaded back. Qwen's weights cannot be fetched here; the
architecture, module names and export path are what this checks, not what the model learns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from server.rlpa import CONTRACT_VERSION
from tests.training.test_rl import good_or_broken

# One step each, on CPU: the recipes' shapes scaled down, everything else theirs (bf16 weights,
# LoRA r32 on all seven Qwen2 projections, activation checkpointing, dapo, beta 0.01).
SMALL = {
    "num_profiles": 6,
    "max_turns": 2,
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "save_steps": 1,
    "disable_tqdm": True,
}
SFT = {**SMALL, "max_length": 512, "dataloader_num_workers": 0}
# Offline scorers and the scripted user (the LLM ones: test_endpoint_concurrency.py).
RL = {
    **SMALL,
    "use_vllm": False,
    "num_generations": 2,
    "max_completion_length": 16,
    "learning_rate": 1.0e-2,
    "simulator": "scripted",
    "matcher": "lexical",
    "judge": "offline",
}


def _logged(out: Path, key: str) -> list[float]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [line[key] for line in lines if key in line]


def _lora(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def _changed(before: dict[str, Any], model: Any) -> bool:
    import torch

    after = dict(model.named_parameters())
    return any(not torch.equal(before[n], after[n].detach()) for n in before)


def _sft(base: Path, out: Path) -> Path:
    from training import sft
    from training.config import SFTRunConfig, load_config
    from training.policy import run_training

    config = load_config(
        SFTRunConfig, "sft_qwen_gpu", {**SFT, "base_model": str(base), "output_dir": str(out)}
    )
    trainer = sft.build_trainer(config)
    adapted = {n.split("lora_")[0].rsplit(".", 2)[-2] for n in _lora(trainer.model)}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    before = _lora(trainer.model)
    final = run_training(trainer, config)
    losses = _logged(out, "loss")
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert _changed(before, trainer.model)
    return final


def sampled_and_good(trainer: Any) -> Any:
    """Each state's first candidate sampled by the tiny Qwen2 itself through the trainer's own
    generator (transformers here), the others well-formed (a random model only writes noise), so
    real sampling runs and the candidates' rewards differ."""
    from training.rl_rollout import trainer_generate

    sample = trainer_generate(trainer)
    scripted = good_or_broken(trainer.rollout_func, trainer.processing_class)

    def generate(prompt_ids: list[list[int]], n: int) -> tuple[list[list[int]], None]:
        sampled, _ = sample(prompt_ids, n)
        good, _ = scripted(prompt_ids, n)
        assert all(len(ids) <= 16 for ids in sampled)  # max_completion_length
        pairs = enumerate(zip(sampled, good, strict=True))
        return [mine if i % n == 0 else theirs for i, (mine, theirs) in pairs], None

    return generate


def _rl(base: Path, adapter: Path, out: Path) -> Path:
    from training import rl
    from training.config import RLRunConfig, load_config
    from training.policy import run_training

    values = {**RL, "base_model": str(base), "init_adapter": str(adapter), "output_dir": str(out)}
    config = load_config(RLRunConfig, "rl_qwen_gpu", values)
    trainer = rl.build_trainer(config)
    trainer.rollout_func.generate = sampled_and_good(trainer)
    before = _lora(trainer.model)
    final = run_training(trainer, config)
    assert len(_logged(out, "rewards/profile/mean")) == 2
    assert all(0 < reward < 2 for reward in _logged(out, "reward"))
    assert _changed(before, trainer.model)
    return final


@pytest.mark.slow
def test_qwen2_trains_sft_then_rl_exports_and_loads_back(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training import cli

    sft_final = _sft(tiny_qwen_dir, tmp_path / "sft")
    rl_final = _rl(tiny_qwen_dir, sft_final, tmp_path / "rl")

    out = tmp_path / "export"
    formats = "hf-merged,hf-adapter"
    assert (
        cli.main(
            ["export", "--checkpoint", str(rl_final), "--out-dir", str(out), "--formats", formats]
        )
        == 0
    )
    for name in ("hf-merged", "hf-adapter"):
        card = json.loads((out / name / "rlpa.json").read_text())
        assert (card["format"], card["contract_version"]) == (name, CONTRACT_VERSION)
        assert card["base_model"] == str(tiny_qwen_dir)
    adapter_config = json.loads((out / "hf-adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_qwen_dir)

    merged = AutoModelForCausalLM.from_pretrained(out / "hf-merged").eval()
    assert merged.config.model_type == "qwen2"
    tokenizer = AutoTokenizer.from_pretrained(out / "hf-merged")
    messages = [{"role": "user", "content": "Any dinner ideas?"}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    generated = merged.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 4

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    adapted = PeftModel.from_pretrained(base, out / "hf-adapter").eval()
    with torch.no_grad():
        from_adapter = adapted(**prompt).logits
        from_merged = merged(**prompt).logits
    # The adapter on the base computes what the merged checkpoint computes, and the training
    # moved it away from the bare base.
    torch.testing.assert_close(from_adapter, from_merged, atol=1e-4, rtol=1e-4)
    with torch.no_grad(), adapted.disable_adapter():
        assert not torch.allclose(adapted(**prompt).logits, from_merged, atol=1e-4)


def test_a_qwen_adapter_exports_the_hf_forms_and_refuses_gguf_lora(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from training.config import SFTRunConfig, load_config
    from training.export.main import ExportConfig, run_export
    from training.policy import lora_config

    recipe = load_config(SFTRunConfig, "sft_qwen_gpu", {"output_dir": str(tmp_path / "unused")})
    lora = lora_config(recipe)
    assert lora is not None
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_qwen_dir), lora)
    checkpoint = tmp_path / "adapter"
    model.save_pretrained(checkpoint)

    def export(*formats: str) -> dict[str, Path]:
        config = ExportConfig(
            str(checkpoint), str(tmp_path / "out"), str(tiny_qwen_dir), formats=list(formats)
        )
        return run_export(config)

    with pytest.raises(ValueError, match=r"llama models .* 'qwen2' model: export it as hf-merged"):
        export("hf-adapter", "gguf-lora")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert sorted(export()) == ["hf-adapter", "hf-merged"]  # the default leaves gguf-lora out
    assert not (tmp_path / "out" / "gguf").exists()
