"""A GGUF model loaded by llama-cpp-python, and one generation on it.

Everything here is blocking and runs on the embedded backend's single worker thread
(`server.backends.llamacpp`); only `GenerationJob.emit` talks to the event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from server.backends import default_gguf_path, embedded_adapter
from server.backends.base import Finish, StreamEvent, TextDelta
from server.backends.stopping import StopScanner
from server.errors import BadRequestError, RLPAError, UpstreamError
from server.settings import Settings

logger = logging.getLogger(__name__)

RESPONSE_TAG = "<response>"
"""Where the RLPA output's reply starts (server.rlpa's format)."""
# llama.cpp reads this seed value as "pick a random seed".
_RANDOM_SEED = 0xFFFFFFFF


@dataclass(eq=False)
class GenerationJob:
    messages: list[dict[str, str]]
    max_tokens: int
    stop: list[str]
    seed: int | None
    sampling: dict[str, float]  # keyword arguments of `Llama.generate`
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[StreamEvent | Exception]
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The consumer has read enough (base.STOP): end the generation and still send the Finish.
    halted: threading.Event = field(default_factory=threading.Event)
    grammar: Any = None  # a llama_cpp.LlamaGrammar constraining the output, or None
    reply_scale: float | None = None
    """The LoRA adapter's scale from the reply's <response> tag on; None: unchanged."""

    def emit(self, item: StreamEvent | Exception) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()


@contextmanager
def amx_kernels_avoided() -> Iterator[None]:
    """Load models without ggml's AMX weight buffers, where ggml was built with AMX kernels.

    ggml's AMX matmul segfaults on the first decode on some AMX Xeons (llama.cpp#20824; a
    `-march=native` build of llama-cpp-python on such a machine has them), and llama-cpp-python
    has no argument for `use_extra_bufts`, so its defaults are wrapped while a model loads.
    Other builds keep their extra (repacked) buffers: they speed up CPU matmuls.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as low

    if b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info():
        yield
        return
    original = low.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = defaults
    try:
        yield
    finally:
        low.llama_model_default_params = original


class LoadedModel:
    def __init__(self, llama: Any) -> None:
        import llama_cpp

        self.llama = llama
        self.n_ctx: int = llama.n_ctx()
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._format = _chat_formatter(llama)
        self._scale = 1.0

    @property
    def has_adapter(self) -> bool:
        return getattr(self.llama, "_lora_adapter", None) is not None

    def set_adapter_scale(self, scale: float) -> None:
        """Scale the loaded LoRA adapter for the tokens evaluated from now on (llama.cpp applies
        adapters at each decode, so this can change between two tokens of one generation)."""
        import ctypes

        import llama_cpp

        adapter = getattr(self.llama, "_lora_adapter", None)
        if adapter is None or scale == self._scale:
            return
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(scale * self.llama.lora_scale)
        if llama_cpp.llama_set_adapters_lora(self.llama._ctx.ctx, adapters, 1, scales):
            raise UpstreamError("The embedded model could not rescale its LoRA adapter.")
        self._scale = scale

    @classmethod
    def load(cls, settings: Settings) -> LoadedModel:
        import llama_cpp

        model_path, adapter = settings.model or default_gguf_path(), embedded_adapter(settings)
        logger.info("embedded model %s, LoRA adapter %s", model_path, adapter or "none")
        with amx_kernels_avoided():
            llama = llama_cpp.Llama(
                model_path=model_path,
                lora_path=adapter,
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                verbose=False,
            )
        return cls(llama)

    def close(self) -> None:
        self.llama.close()

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The messages through the model's own chat template, as the tokens the model reads."""
        import jinja2

        try:
            formatted = self._format(messages=messages)
        except (ValueError, jinja2.TemplateError) as exc:
            raise BadRequestError(f"The model's chat template refused the messages: {exc}") from exc
        tokens: list[int] = self.llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        return tokens

    def run(self, job: GenerationJob) -> None:
        if job.cancelled.is_set():
            return
        try:
            self.set_adapter_scale(1.0)
            self._generate(job)
        except RLPAError as exc:
            job.emit(exc)
        except Exception as exc:
            logger.exception("embedded generation failed")
            job.emit(UpstreamError(f"The embedded model failed: {exc}", status_code=502))

    def _generate(self, job: GenerationJob) -> None:
        prompt = self.prompt_tokens(job.messages)
        room = self.n_ctx - len(prompt)
        if room <= 0:
            raise BadRequestError(
                f"The prompt is {len(prompt)} tokens; the model's context holds {self.n_ctx}.",
                param="messages",
                code="context_length_exceeded",
            )
        self.llama.set_seed(_RANDOM_SEED if job.seed is None else job.seed % _RANDOM_SEED)
        # Prompts reuse llama.cpp's prefix cache (multi-turn chats share long prefixes). Logits of
        # a prompt read back from the cache and of one evaluated afresh can differ in the last
        # bits, so a seed repeats its text when the cache holds the same prefix: best effort,
        # as OpenAI documents `seed`.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        scanner = StopScanner(job.stop)
        generated, reason = 0, "length"
        unsent = 0  # tokens whose text is not out yet (half a UTF-8 character, a held stop)
        switch, written = job.reply_scale, ""
        for token in self.llama.generate(prompt, grammar=job.grammar, **job.sampling):
            generated += 1  # the end-of-generation token counts too, as vLLM and llama.cpp count
            if self._is_eog(self._vocab, token):
                reason = "stop"
                break
            unsent += 1
            piece = decoder.decode(self.llama.detokenize([token]))
            if switch is not None:
                written = (written + piece)[-32:]
                if RESPONSE_TAG in written:  # the block is written: the reply's tokens follow
                    self.set_adapter_scale(switch)
                    switch = None
            text = scanner.feed(piece)
            if text:
                job.emit(TextDelta(text, tokens=unsent))
                unsent = 0
            if scanner.stopped or job.halted.is_set():
                reason = "stop"
                break
            if generated >= min(job.max_tokens, room) or job.cancelled.is_set():
                break
        if job.cancelled.is_set():
            return
        tail = "" if scanner.stopped else scanner.flush(decoder.decode(b"", final=True))
        if tail:
            job.emit(TextDelta(tail, tokens=unsent))
        job.emit(Finish(reason=reason, prompt_tokens=len(prompt), completion_tokens=generated))


def _chat_formatter(llama: Any) -> Any:
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if template is None:
        logger.warning("the GGUF has no chat template; formatting prompts as ChatML")
        return llama_chat_format.format_chatml
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
    )


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    text: bytes = llama.detokenize([token], special=True)
    return text.decode("utf-8", errors="replace")
