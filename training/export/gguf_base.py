"""A Hugging Face llama model written as an f32 GGUF base that llama.cpp loads.

Meant for tests (a tiny random model served by real llama.cpp) and for checking a conversion
(the dequantized SmolLM2 written back at full precision). The tokenizer is not converted: its
GGUF metadata is copied from the GGUF the model's tokenizer came from, so both sides tokenize alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.export.gguf_layout import ARCH, hf_to_gguf_name, permute_rotary, rotary_heads

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def write_tiny_gguf_base(
    hf_model: PreTrainedModel, tokenizer_source_gguf: str, out_path: str
) -> str:
    """Write `hf_model` (a `LlamaForCausalLM`) to `out_path` as an f32 llama GGUF; returns the path.

    Tensors are renamed as llama.cpp's converter names them and q/k rows are permuted to its
    rotary layout. Every `tokenizer.*` key of `tokenizer_source_gguf` is copied; the model's
    vocabulary size must equal that tokenizer's.
    """
    import gguf
    import torch

    config = hf_model.config
    source = gguf.GGUFReader(tokenizer_source_gguf)
    n_tokens = len(source.fields["tokenizer.ggml.tokens"].data)
    if config.vocab_size != n_tokens:
        raise ValueError(
            f"the model has {config.vocab_size} token embeddings but the tokenizer in "
            f"{tokenizer_source_gguf} has {n_tokens} tokens"
        )
    writer = gguf.GGUFWriter(out_path, ARCH)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(str(getattr(config, "name_or_path", "") or "rlpa-tiny-llama"))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_hparams(writer, config)
    for key, field in source.fields.items():
        if key.startswith("tokenizer."):
            sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for name, tensor in hf_model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when there is no output tensor
        gguf_name = hf_to_gguf_name(name)
        values = tensor.detach().to(torch.float32).cpu().numpy()
        heads = rotary_heads(gguf_name, config)
        if heads is not None:
            values = permute_rotary(values, heads)
        writer.add_tensor(gguf_name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(Path(out_path))


def _add_hparams(writer: Any, config: Any) -> None:
    if getattr(config, "model_type", None) != "llama":
        raise ValueError(f"only llama models can be written, not {config.model_type!r}")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ValueError(f"llama.cpp's llama runs SiLU, not {config.hidden_act!r}")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ValueError("llama models with biases are not supported")
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"rope scaling {rope.get('rope_type')!r} is not supported")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // config.num_attention_heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
