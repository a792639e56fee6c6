"""The embedded backend: llama-cpp-python in this process, on the CPU.

Lifecycle (the app's lifespan does this through `create_backend`): construct, `await start()`
(loads the GGUF on the worker thread, so the event loop keeps serving), `await aclose()`.

A llama.cpp context runs one generation at a time, so all model work goes through one worker
thread: requests queue there in arrival order and their outputs never mix. Tokens cross to the
event loop through an asyncio.Queue. When the consumer stops early (client gone, generator
closed, task cancelled) the worker stops after the token in hand and the next request starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from server import metrics, rlpa
from server.backends import DEFAULT_MODEL_NAME, served_model_name
from server.backends.base import (
    STOP,
    BackendStream,
    Finish,
    RelayEndpoint,
    SamplingParams,
    TextDelta,
)
from server.backends.llamacpp_model import GenerationJob, LoadedModel
from server.errors import BackendBusyError, BadRequestError, NotFoundError, UpstreamError
from server.settings import Settings

# llama.cpp's own defaults for the samplers the settings do not name.
_DEFAULT_TOP_K = 40
_DEFAULT_MIN_P = 0.05
_EXTRAS = frozenset({"repeat_penalty", "top_k", "min_p"})


class LlamaCppBackend:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._name = served_model_name(settings) or DEFAULT_MODEL_NAME
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._model: LoadedModel | None = None
        self._jobs: set[GenerationJob] = set()  # submitted and not finished
        metrics.BACKEND_QUEUE_DEPTH.set_function(lambda: self.queue_depth)  # read at scrape time
        self._grammar: Any = None  # llama_cpp.LlamaGrammar's class, once the grammar is on

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def queue_depth(self) -> int:
        """Generations waiting behind the one the worker thread runs (it runs them in order)."""
        return max(0, len(self._jobs) - 1)

    @property
    def busy(self) -> bool:
        """Some generation is queued or running on the worker thread."""
        return bool(self._jobs)

    async def start(self) -> None:
        if self._model is None:
            loop = asyncio.get_running_loop()
            self._model = await loop.run_in_executor(self._worker, LoadedModel.load, self._settings)
        if self._settings.embedded_grammar and self._grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammar = LlamaGrammar

    async def aclose(self) -> None:
        for job in list(self._jobs):
            job.cancelled.set()
        model, self._model = self._model, None
        if model is not None:
            # Queued after every running job, so the model is never freed under a generation.
            await asyncio.get_running_loop().run_in_executor(self._worker, model.close)
        self._worker.shutdown(wait=False)

    async def list_models(self) -> list[str]:
        return [self._name]

    async def health(self) -> bool:
        return self._model is not None

    def supported_extras(self) -> frozenset[str]:
        return _EXTRAS

    async def relay(self, endpoint: RelayEndpoint, body: dict[str, Any]) -> dict[str, Any]:
        raise _not_served(endpoint)

    async def relay_stream(
        self, endpoint: RelayEndpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        raise _not_served(endpoint)

    async def stream(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> BackendStream:
        loaded = self._model
        if loaded is None:
            raise UpstreamError("The embedded model is not loaded.", status_code=503)
        if len(self._jobs) > self._settings.max_queue:  # one runs, max_queue wait behind it
            metrics.BACKEND_BUSY.labels("queue").inc()
            raise BackendBusyError(
                f"The model is busy: {len(self._jobs)} requests are ahead of this one, as many "
                "as it takes. Try again shortly."
            )
        loop = asyncio.get_running_loop()
        job = GenerationJob(
            messages=messages,
            max_tokens=params.max_tokens or self._settings.default_max_tokens,
            stop=list(params.stop),
            seed=params.seed,
            sampling=self._sampling(params),
            loop=loop,
            queue=asyncio.Queue(),
            grammar=self._grammar_for(params),
            reply_scale=self._reply_scale(loaded, params),
        )
        self._jobs.add(job)
        done = loop.run_in_executor(self._worker, loaded.run, job)
        done.add_done_callback(lambda _: self._jobs.discard(job))
        try:
            while True:
                event = await job.queue.get()
                if isinstance(event, Exception):
                    raise event
                if job.halted.is_set() and isinstance(event, TextDelta):
                    continue  # generated before the worker saw the STOP: nobody wants it
                if (yield event) is STOP:
                    job.halted.set()
                if isinstance(event, Finish):
                    self._jobs.discard(job)  # done generating: nothing waits for it any more
                    return
        finally:
            job.cancelled.set()

    def _grammar_for(self, params: SamplingParams) -> Any:
        if self._grammar is None or not params.rlpa_format:
            return None
        # A LlamaGrammar only holds the text: llama.cpp parses it as each generation starts.
        return self._grammar.from_string(params.grammar or rlpa.FORMAT_GBNF, verbose=False)

    def _reply_scale(self, loaded: LoadedModel, params: SamplingParams) -> float | None:
        scale = self._settings.reply_adapter_scale
        if not params.rlpa_format or not loaded.has_adapter or scale == 1.0:
            return None
        return scale

    def _sampling(self, params: SamplingParams) -> dict[str, float]:
        settings, extra = self._settings, params.extra
        return {
            "temp": _or(params.temperature, settings.embedded_temperature),
            "top_p": _or(params.top_p, settings.embedded_top_p),
            "top_k": _number(extra, "top_k", _DEFAULT_TOP_K, int),
            "min_p": _number(extra, "min_p", _DEFAULT_MIN_P, float),
            "repeat_penalty": _number(
                extra, "repeat_penalty", settings.embedded_repeat_penalty, float
            ),
            "frequency_penalty": _or(params.frequency_penalty, 0.0),
            "presence_penalty": _or(params.presence_penalty, 0.0),
        }


def _not_served(endpoint: RelayEndpoint) -> NotFoundError:
    # The one llama.cpp context is made for chat: embeddings need one made for them
    # (llama-cpp-python's embedding=True), and raw completions would queue behind chat turns
    # on the one worker thread for a model adapted to write profiles, not to continue text.
    return NotFoundError(
        f"The embedded model serves chat only: /v1/{endpoint} needs RLPA_BACKEND=openai and an "
        "upstream that serves it.",
        code="unsupported_endpoint",
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _number(extra: dict[str, Any], name: str, default: float, kind: type[float]) -> float:
    value = extra.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestError(f"'{name}' must be a number.", param=name, code="invalid_value")
    return kind(value)
