"""Load a checkpoint for evaluation: a merged HF directory, a PEFT adapter, or a GGUF base."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from server.rlpa import LATEST_VERSION
from server.rlpa.checkpoint import read_rlpa_json

logger = logging.getLogger(__name__)


def load_checkpoint(
    path: str, base_model: str | None = None, device: str = "cpu"
) -> tuple[Any, Any, int]:
    """(model, tokenizer, contract version), the model in eval mode on `device`.

    An adapter is merged into its base once here, so generation runs at the base's speed. Its
    base is `base_model` if given, else the one its `rlpa.json` or `adapter_config.json` names.
    The checkpoint's rlpa.json (`server.rlpa.checkpoint`) gives the contract version, refusing
    one this code does not speak; a checkpoint without one is contract 1, a bare base (`""` or a
    GGUF file) is no checkpoint and gets the latest.
    """
    if not path or path.endswith(".gguf"):
        model, tokenizer = _load_base(path)
        return _ready(model, device), tokenizer, LATEST_VERSION
    directory = Path(path)
    card = read_rlpa_json(directory)
    version = int(card["contract_version"])
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists():
        from peft import PeftModel

        # rlpa.json's base_model is authoritative when present: "" names the shipped SmolLM2 GGUF.
        base_name = base_model or (
            card["base_model"]
            if "base_model" in card
            else json.loads(adapter_config.read_text()).get("base_model_name_or_path", "")
        )
        base, tokenizer = _load_base(base_name)
        model = PeftModel.from_pretrained(base, str(directory)).merge_and_unload()
        if (directory / "tokenizer_config.json").exists():
            tokenizer = _load_tokenizer(str(directory))
        logger.info("loaded adapter %s on %s", directory, base_name or "SmolLM2")
        return _ready(model, device), tokenizer, version
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True)
    return _ready(model, device), _load_tokenizer(str(directory)), version


def _load_base(name: str) -> tuple[Any, Any]:
    """A GGUF file (or "" for the shipped SmolLM2), or a local HF directory."""
    if not name or name.endswith(".gguf"):
        from training.base_model import load_base_from_gguf, smollm2_gguf_path

        return load_base_from_gguf(name or smollm2_gguf_path())
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True)
    return model, _load_tokenizer(name)


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, local_files_only=True)


def _ready(model: Any, device: str) -> Any:
    model.to(device)
    model.eval()
    return model
