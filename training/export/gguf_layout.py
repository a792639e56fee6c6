"""How llama.cpp lays out a HF llama model in GGUF: tensor names and the rotary permutation.

Shared by the reader (`training.base_model`, GGUF -> HF) and the writers (`gguf_base`, `gguf_lora`,
HF -> GGUF), so both directions use one table. Names follow llama.cpp's `convert_hf_to_gguf.py`
(`gguf.TensorNameMap` for `MODEL_ARCH.LLAMA`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ARCH = "llama"

# llama.cpp block tensor -> the HF module inside `model.layers.{i}`.
BLOCK_TENSORS = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}

_HF_BLOCK = {hf: gguf for gguf, hf in BLOCK_TENSORS.items()}
_HF_GLOBAL = {hf: gguf for gguf, hf in GLOBAL_TENSORS.items()}
_GGUF_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")
_HF_BLOCK_NAME = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)")


def gguf_to_hf_name(name: str) -> str:
    """`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`."""
    if match := _GGUF_BLOCK_NAME.fullmatch(name):
        layer, tensor, kind = match.groups()
        if tensor in BLOCK_TENSORS:
            return f"model.layers.{layer}.{BLOCK_TENSORS[tensor]}.{kind}"
    stem, _, kind = name.rpartition(".")
    if stem in GLOBAL_TENSORS:
        return f"{GLOBAL_TENSORS[stem]}.{kind}"
    raise KeyError(f"no Hugging Face llama tensor corresponds to the GGUF tensor {name!r}")


def hf_to_gguf_name(name: str) -> str:
    """`model.layers.3.self_attn.q_proj.weight` -> `blk.3.attn_q.weight`."""
    if match := _HF_BLOCK_NAME.fullmatch(name):
        layer, module, kind = match.groups()
        if module in _HF_BLOCK:
            return f"blk.{layer}.{_HF_BLOCK[module]}.{kind}"
    stem, _, kind = name.rpartition(".")
    if stem in _HF_GLOBAL:
        return f"{_HF_GLOBAL[stem]}.{kind}"
    raise KeyError(f"llama.cpp's llama architecture has no tensor for {name!r}")


def rotary_heads(gguf_name: str, config: Any) -> int | None:
    """How many heads llama.cpp permuted this tensor's rows over, or None if it did not.

    llama.cpp's converter permutes q/k rows from HF's "rotate half" rotary layout to the
    interleaved one its kernels use: q over the attention heads, k over the key/value heads.
    """
    if ".attn_q." in gguf_name:
        return int(config.num_attention_heads)
    if ".attn_k." in gguf_name:
        return int(config.num_key_value_heads)
    return None


def permute_rotary(rows: np.ndarray, n_head: int) -> np.ndarray:
    """HF q/k rows -> llama.cpp's order (`LlamaModel.permute` in convert_hf_to_gguf.py)."""
    shape = rows.shape
    return (
        rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )


def unpermute_rotary(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k rows -> HF order: the inverse of `permute_rotary`."""
    shape = rows.shape
    return (
        rows.reshape(n_head, shape[0] // n_head // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )
