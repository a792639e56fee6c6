"""Export a trained RLPA model to what the servers load, each stamped with the contract version.

- `export_hf`: a Hugging Face checkpoint, merged or adapter-only, for vLLM (`training.export.hf`).
- `export_gguf_lora`: a llama.cpp GGUF LoRA for the embedded gateway.
- `write_tiny_gguf_base`: a HF llama as an f32 GGUF base, so tests can run llama.cpp on it.
- `read_rlpa_json`: a checkpoint's `rlpa.json`, refused if its contract version is not ours.
- `main`: the `python -m training.export` entry point (`training.export.main`).

Importing this package is cheap: torch, transformers, peft and gguf load inside the functions.
"""

from training.export.gguf_base import write_tiny_gguf_base
from training.export.gguf_lora import export_gguf_lora
from training.export.hf import (
    RLPA_JSON,
    ContractVersionError,
    export_hf,
    read_rlpa_json,
    write_rlpa_json,
)
from training.export.main import ExportConfig, main

__all__ = [
    "RLPA_JSON",
    "ContractVersionError",
    "ExportConfig",
    "export_gguf_lora",
    "export_hf",
    "main",
    "read_rlpa_json",
    "write_rlpa_json",
    "write_tiny_gguf_base",
]
