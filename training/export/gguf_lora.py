"""A PEFT LoRA written as a llama.cpp GGUF adapter, the form the embedded gateway loads.

The file is what llama.cpp's `convert_lora_to_gguf.py` writes: `general.type = adapter`,
`adapter.type = lora`, `adapter.lora.alpha`, and per adapted weight `blk.{i}.attn_q.weight.lora_a`
(numpy shape (rank, n_in), ggml [n_in, rank]) and `.lora_b` (numpy (n_out, rank), ggml
[rank, n_out]): PEFT's `lora_A.weight` / `lora_B.weight` as they are. Two differences from PEFT
that the export takes care of:

- llama.cpp stores a llama's q/k rows in its own rotary order, so q/k `lora_b` rows get the same
  permutation as the base weights (the delta `B @ A` is permuted row-wise, and only B has those
  rows). Its converter does this for the `llama` architecture only; others keep HF's order.
- llama.cpp scales every adapted weight by `alpha / rank` (rank read from the tensor). PEFT's own
  per-module scaling (rsLoRA, `rank_pattern`, `alpha_pattern`) is folded into `lora_b` where it
  differs, so the adapter computes exactly what the PEFT model computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from training.export.gguf_layout import hf_to_gguf_name, permute_rotary, rotary_heads

CONTRACT_VERSION_KEY = "rlpa.contract_version"


def export_gguf_lora(
    peft_model: Any,
    out_path: str,
    *,
    base_gguf_arch: str = "llama",
    alpha: float | None = None,
    adapter_name: str = "default",
    dtype: Literal["f32", "f16"] = "f32",
    contract_version: int | None = None,
) -> str:
    """Write the LoRA adapter `adapter_name` of `peft_model` to `out_path`; returns the path.

    `alpha` is the `adapter.lora.alpha` written (default: the PEFT config's `lora_alpha`); any
    value gives the same outputs because the remaining scale is folded into `lora_b`. Only LoRA on
    the llama linear layers (q/k/v/o, gate/up/down, and an untied lm_head) can be exported: DoRA,
    LoRA biases, embedding LoRA and `modules_to_save` have no llama.cpp form and are refused.
    The `rlpa.contract_version` key records the prompt/output contract the adapter was trained
    for (llama.cpp ignores keys it does not know).
    """
    import gguf

    from server.rlpa import CONTRACT_VERSION

    peft_config = peft_model.peft_config[adapter_name]
    _refuse_unsupported(peft_config)
    alpha = float(peft_config.lora_alpha if alpha is None else alpha)
    permute = base_gguf_arch == "llama"  # llama.cpp's converter permutes q/k for llama only
    tensors = list(_lora_tensors(peft_model, adapter_name, alpha, permute))
    if not tensors:
        raise ValueError(f"the model has no LoRA layers for adapter {adapter_name!r}")

    writer = gguf.GGUFWriter(out_path, base_gguf_arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_uint32(CONTRACT_VERSION_KEY, contract_version or CONTRACT_VERSION)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    )
    np_dtype = "float16" if dtype == "f16" else "float32"
    for name, values in tensors:
        writer.add_tensor(name, values.astype(np_dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(Path(out_path))


def _refuse_unsupported(peft_config: Any) -> None:
    if getattr(peft_config, "peft_type", "LORA") != "LORA":  # PeftType is a str enum
        raise ValueError(f"only LoRA adapters can be exported, not {peft_config.peft_type}")
    if getattr(peft_config, "use_dora", False):
        raise ValueError("DoRA adapters have no llama.cpp form: merge them (export_hf) instead")
    if getattr(peft_config, "bias", "none") != "none":
        raise ValueError("LoRA biases have no llama.cpp form: train with bias='none'")
    if getattr(peft_config, "modules_to_save", None):
        raise ValueError(
            f"modules_to_save {peft_config.modules_to_save} cannot ride in a GGUF LoRA adapter"
        )


def _lora_tensors(peft_model: Any, adapter_name: str, alpha: float, permute: bool) -> Any:
    """(GGUF name, numpy array) pairs, lora_a then lora_b per adapted weight, in model order."""
    import torch
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    config = base.config
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for module_name, module in base.named_modules():
        if not isinstance(module, LoraLayer) or not _adapts(module, adapter_name):
            continue
        if not isinstance(module.get_base_layer(), torch.nn.Linear) or (
            tied and module_name == "lm_head"
        ):
            raise ValueError(f"LoRA on {module_name!r} cannot be exported to llama.cpp")
        gguf_name = hf_to_gguf_name(f"{module_name}.weight")
        # peft declares lora_A/lora_B as ModuleDicts only at run time: mypy sees Tensor | Module.
        lora_a = module.lora_A[adapter_name].weight.detach().to(torch.float32).cpu().numpy()  # type: ignore[operator]
        lora_b = module.lora_B[adapter_name].weight.detach().to(torch.float32).cpu().numpy()  # type: ignore[operator]
        rank = lora_a.shape[0]
        llamacpp_scale = alpha / rank if alpha else 1.0
        peft_scale = float(module.scaling[adapter_name])
        if peft_scale != llamacpp_scale:
            lora_b = lora_b * (peft_scale / llamacpp_scale)
        heads = rotary_heads(gguf_name, config) if permute else None
        if heads is not None:
            lora_b = permute_rotary(lora_b, heads)
        yield f"{gguf_name}.lora_a", lora_a
        yield f"{gguf_name}.lora_b", lora_b


def _adapts(module: Any, adapter_name: str) -> bool:
    # Embedding LoRA keeps its weights apart, in lora_embedding_A/B.
    return adapter_name in module.lora_A or adapter_name in module.lora_embedding_A
