from tests.fixtures.models import gguf_path, llamacpp_backend, lora_adapter_path
from tests.fixtures.upstreams import (
    llama_server,
    refusing_url,
    scripted_pair,
    upstream_a,
    upstream_b,
)

__all__ = [
    "gguf_path",
    "llama_server",
    "llamacpp_backend",
    "lora_adapter_path",
    "refusing_url",
    "scripted_pair",
    "upstream_a",
    "upstream_b",
]
