"""Export a trained RLPA model to what the servers load, each stamped with the contract version.

- `export_hf`: a Hugging Face checkpoint, merged or adapter-only, for vLLM (`training.export.hf`).
- `export_gguf_lora`: a llama.cpp GGUF LoRA for the embedded gateway.
- `write_tiny_gguf_base`: a HF llama as an f32 GGUF base, so tests can run llama.cpp on it.
- `read_rlpa_json`, `write_rlpa_json`: a checkpoint's `rlpa.json` (`server.rlpa.checkpoint`, the
  one module the gateway reads it with too; no file means contract 1).
- `main`: `rlpa export`'s stage, fed an `ExportConfig` (`training.export.main`).

Importing this package is cheap: torch, transformers, peft and gguf load inside the functions.
"""

from server.rlpa.checkpoint import (
    RLPA_JSON,
    ContractVersionError,
    read_rlpa_json,
    write_rlpa_json,
)
from training.export.gguf_base import write_tiny_gguf_base
from training.export.gguf_lora import export_gguf_lora
from training.export.hf import export_hf
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
