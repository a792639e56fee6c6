"""The two forms of the shipped adapter are one model: the PEFT adapter (what vLLM serves on the
Hugging Face base) on the HF-layout base built from the GGUF weights, and the GGUF LoRA in
llama.cpp (what the embedded gateway serves), give the same greedy tokens."""

from __future__ import annotations

import pytest

from server.backends import SHIPPED_ADAPTER, default_gguf_path
from server.rlpa import SYSTEM_PROMPT_V2

MESSAGES = [
    {"role": "system", "content": SYSTEM_PROMPT_V2},
    {"role": "user", "content": "Hi! I am a nurse in Seattle and I love hiking."},
]
NEW_TOKENS = 24


@pytest.mark.slow
def test_peft_on_the_hf_base_and_gguf_lora_in_llama_cpp_agree_on_greedy_tokens() -> None:
    import llama_cpp
    import torch
    from peft import PeftModel

    from training.base_model import load_base_from_gguf

    base, tokenizer = load_base_from_gguf(default_gguf_path())
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    model = PeftModel.from_pretrained(base, str(SHIPPED_ADAPTER.parent / "hf-adapter")).eval()

    llama = llama_cpp.Llama(
        model_path=default_gguf_path(),
        lora_path=str(SHIPPED_ADAPTER),
        n_ctx=1024,
        n_threads=1,
        verbose=False,
    )
    try:
        gguf_tokens: list[int] = []
        for token in llama.generate(ids, temp=0.0, top_k=1, reset=True):
            if token == llama.token_eos() or len(gguf_tokens) == NEW_TOKENS:
                break
            gguf_tokens.append(token)
    finally:
        llama.close()

    # Teacher-forced on llama.cpp's greedy reply, the PEFT model picks the same token almost
    # everywhere, and never ranks llama.cpp's choice below its third. Exact equality of two free
    # runs is too strict: llama.cpp multiplies Q4_1 weights by 8-bit-quantized activations, so a
    # near-tie can go the other way and the two replies part from there.
    with torch.no_grad():
        logits = model(torch.tensor([ids + gguf_tokens])).logits[0, len(ids) - 1 : -1]
    top = logits.topk(3).indices.tolist()
    same = sum(ranked[0] == token for ranked, token in zip(top, gguf_tokens, strict=True))
    reply = tokenizer.decode(gguf_tokens)
    assert reply.lstrip().startswith("<profile>"), reply  # the adapter is on: the RLPA format
    assert all(token in ranked for ranked, token in zip(top, gguf_tokens, strict=True)), reply
    assert same >= 0.9 * len(gguf_tokens), (same, len(gguf_tokens), reply)
