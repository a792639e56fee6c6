"""The embedded backend on the real SmolLM2 GGUF (one model load per session)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jinja2
import pytest

from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.base import STOP, Finish, SamplingParams, TextDelta
from server.backends.llamacpp import LlamaCppBackend
from server.backends.llamacpp_model import amx_kernels_avoided
from server.errors import BadRequestError, UpstreamError
from server.rlpa import build_messages
from tests.fixtures.models import collect, embedded_settings

MODEL = DEFAULT_ADAPTED_MODEL_NAME  # the shipped RLPA adapter on SmolLM2
JOKE = [{"role": "user", "content": "Tell me a short joke."}]
STORY = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]


def count_template_tokens(backend: LlamaCppBackend, messages: list[dict[str, str]]) -> int:
    """The prompt's size, rendered here from the GGUF's own template and tokenizer."""
    assert backend.model is not None
    llama = backend.model.llama
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    prompt = env.from_string(llama.metadata["tokenizer.chat_template"]).render(
        messages=messages, add_generation_prompt=True
    )
    return len(llama.tokenize(prompt.encode(), add_bos=False, special=True))


def count_text_tokens(backend: LlamaCppBackend, text: str) -> int:
    assert backend.model is not None
    return len(backend.model.llama.tokenize(text.encode(), add_bos=False, special=False))


async def wait_until(condition: Callable[[], bool], limit_s: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit_s, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.slow
async def test_streams_text_and_real_token_counts(llamacpp_backend: LlamaCppBackend) -> None:
    params = SamplingParams(max_tokens=16, seed=7)
    events = [event async for event in llamacpp_backend.stream(MODEL, JOKE, params)]
    assert all(isinstance(event, TextDelta) for event in events[:-1])
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "length"
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert text.strip()
    assert finish.prompt_tokens == count_template_tokens(llamacpp_backend, JOKE)
    assert finish.completion_tokens == 16 == count_text_tokens(llamacpp_backend, text)


@pytest.mark.slow
async def test_end_of_generation_token_is_counted(llamacpp_backend: LlamaCppBackend) -> None:
    # The contract prompt, as the gateway sends it: the adapter answers with a short, well-formed
    # block and reply (a bare "Say hi" without it drifts into markup that retokenizes
    # differently, which is not what this test is about).
    messages = build_messages([{"role": "user", "content": "Say hi"}], None, 2)
    params = SamplingParams(max_tokens=256, seed=5, rlpa_format=True)
    text, finish = await collect(llamacpp_backend.stream(MODEL, messages, params))
    assert finish.reason == "stop"
    assert finish.completion_tokens == count_text_tokens(llamacpp_backend, text) + 1
    assert "<|im_end|>" not in text


@pytest.mark.slow
async def test_max_tokens_finishes_with_length(llamacpp_backend: LlamaCppBackend) -> None:
    params = SamplingParams(max_tokens=4, seed=1)
    _, finish = await collect(llamacpp_backend.stream(MODEL, STORY, params))
    assert (finish.reason, finish.completion_tokens) == ("length", 4)


@pytest.mark.slow
async def test_stop_string_ends_the_text_before_it(llamacpp_backend: LlamaCppBackend) -> None:
    # Same cache state for both calls below (see test_same_seed_gives_same_text).
    await collect(llamacpp_backend.stream(MODEL, JOKE, SamplingParams(24, seed=3)))
    free, _ = await collect(llamacpp_backend.stream(MODEL, JOKE, SamplingParams(24, seed=3)))
    stop = free[8:12]
    params = SamplingParams(max_tokens=24, seed=3, stop=["@@never@@", stop])
    text, finish = await collect(llamacpp_backend.stream(MODEL, JOKE, params))
    assert finish.reason == "stop"
    assert text == free[: free.index(stop)]
    assert stop not in text


@pytest.mark.slow
async def test_same_seed_gives_same_text(llamacpp_backend: LlamaCppBackend) -> None:
    params = SamplingParams(max_tokens=16, seed=11, temperature=1.0)
    # The first call puts the prompt in llama.cpp's prefix cache; from then on it is read back
    # from there, and a seed repeats its text (see LoadedModel._generate).
    await collect(llamacpp_backend.stream(MODEL, STORY, params))
    first, _ = await collect(llamacpp_backend.stream(MODEL, STORY, params))
    second, _ = await collect(llamacpp_backend.stream(MODEL, STORY, params))
    assert first == second


@pytest.mark.slow
async def test_concurrent_streams_do_not_mix(llamacpp_backend: LlamaCppBackend) -> None:
    def run(seed: int) -> asyncio.Future[tuple[str, Finish]]:
        params = SamplingParams(max_tokens=12, seed=seed)
        return asyncio.ensure_future(collect(llamacpp_backend.stream(MODEL, STORY, params)))

    alone = [await run(1), await run(2)]
    together = await asyncio.gather(run(1), run(2))
    assert together == alone


@pytest.mark.slow
async def test_closing_early_stops_the_worker(llamacpp_backend: LlamaCppBackend) -> None:
    stream = llamacpp_backend.stream(MODEL, STORY, SamplingParams(max_tokens=500, seed=3))
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    await wait_until(lambda: not llamacpp_backend.busy)
    params = SamplingParams(max_tokens=4, seed=1)
    _, finish = await asyncio.wait_for(collect(llamacpp_backend.stream(MODEL, JOKE, params)), 30)
    assert finish.completion_tokens == 4


@pytest.mark.slow
async def test_stop_ends_the_generation_and_answers_with_its_finish(
    llamacpp_backend: LlamaCppBackend,
) -> None:
    stream = llamacpp_backend.stream(MODEL, STORY, SamplingParams(max_tokens=500, seed=3))
    read = [await anext(stream) for _ in range(3)]
    assert all(isinstance(event, TextDelta) for event in read)
    finish = await stream.asend(STOP)
    assert isinstance(finish, Finish) and finish.reason == "stop"
    # What the worker generated before it saw the stop: a token or two past what was read.
    assert 3 <= finish.completion_tokens < 20
    assert finish.prompt_tokens == count_template_tokens(llamacpp_backend, STORY)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await wait_until(lambda: not llamacpp_backend.busy)


@pytest.mark.slow
async def test_cancelled_consumer_stops_the_worker(llamacpp_backend: LlamaCppBackend) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in llamacpp_backend.stream(MODEL, STORY, SamplingParams(max_tokens=500)):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not llamacpp_backend.busy)


@pytest.mark.slow
async def test_bad_sampling_extra_is_refused(llamacpp_backend: LlamaCppBackend) -> None:
    with pytest.raises(BadRequestError) as raised:
        await collect(llamacpp_backend.stream(MODEL, JOKE, SamplingParams(extra={"top_k": "x"})))
    assert raised.value.param == "top_k"


@pytest.mark.slow
async def test_prompt_beyond_the_context_is_refused(llamacpp_backend: LlamaCppBackend) -> None:
    messages = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(BadRequestError) as raised:
        await collect(llamacpp_backend.stream(MODEL, messages, SamplingParams()))
    assert raised.value.code == "context_length_exceeded"


async def test_stream_before_start_is_unavailable() -> None:
    backend = LlamaCppBackend(embedded_settings())
    with pytest.raises(UpstreamError) as raised:
        await collect(backend.stream(MODEL, JOKE, SamplingParams()))
    assert raised.value.status_code == 503
    await backend.aclose()


def test_amx_builds_load_without_extra_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp
    import llama_cpp.llama_cpp as low

    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: b"CPU : AMX_INT8 = 1 |")
    with amx_kernels_avoided():
        assert low.llama_model_default_params().use_extra_bufts is False
    assert low.llama_model_default_params().use_extra_bufts is True


@pytest.mark.slow
async def test_lora_adapter_is_applied(
    llamacpp_backend: LlamaCppBackend, lora_adapter_path: str
) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.0)
    base, _ = await collect(llamacpp_backend.stream(MODEL, JOKE, params))
    adapted_backend = LlamaCppBackend(embedded_settings(adapter=lora_adapter_path))
    await adapted_backend.start()
    try:
        assert await adapted_backend.list_models() == ["smollm2-135m-rlpa"]
        adapted, finish = await collect(adapted_backend.stream(MODEL, JOKE, params))
    finally:
        await adapted_backend.aclose()
    assert finish.completion_tokens == 8
    assert adapted != base


@pytest.mark.slow
async def test_base_weights_can_write_the_reply_after_the_adapters_block(
    llamacpp_backend: LlamaCppBackend,
) -> None:
    # RLPA_REPLY_ADAPTER_SCALE=0: the adapter writes the profile block, the base weights the
    # reply. Greedy, so each output is the model's own: the block is the adapter's (as with the
    # adapter throughout), the reply is not; and the adapter is back for the next turn's block.
    split = LlamaCppBackend(embedded_settings(reply_adapter_scale=0.0))
    await split.start()
    try:
        params = SamplingParams(max_tokens=160, temperature=0.0, seed=1, rlpa_format=True)
        for said in ("I'm a nurse in Seattle. Any ideas for dinner?", "I have two cats."):
            messages = build_messages([{"role": "user", "content": said}], None, 2)
            whole, _ = await collect(llamacpp_backend.stream(MODEL, messages, params))
            halves, _ = await collect(split.stream(MODEL, messages, params))
            block, _, reply = whole.partition("<response>")
            split_block, _, split_reply = halves.partition("<response>")
            assert split_block == block and "</profile>" in block
            assert split_reply.strip() and split_reply != reply
    finally:
        await split.aclose()
