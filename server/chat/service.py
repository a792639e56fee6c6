"""One chat turn: identity -> stored profile -> RLPA prompt -> backend -> splitter -> persist.

The visible reply streams as the model writes it; the profile block is held back. The block's
change is written as soon as the block is complete, while the reply is still being generated,
and the turn's last chunk (or whole response) waits for that commit. A turn that fails at the
backend before its block is complete writes nothing; once the block is complete its change is
stored whatever happens to the rest of the reply, as when the client disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from server import metrics, rlpa
from server.auth.service import Principal, validate_user
from server.backends.base import ChatBackend, Finish, SamplingParams
from server.errors import BadRequestError, NotFoundError, ProfileWriteError
from server.openai import protocol as p
from server.profiles.service import ProfileService, ProfileState

logger = logging.getLogger(__name__)

# Fields the gateway cannot relay whatever the backend: their results would be lost.
_NEVER_RELAYED = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs")
_MODELS_TTL_S = 30.0


@dataclass
class Turn:
    request_id: str
    model: str
    tenant_id: int
    user: str | None
    stored: ProfileState | None
    remember: bool  # read and write the stored profile
    messages: list[dict[str, str]]
    params: SamplingParams
    n: int
    include_usage: bool
    return_profile: bool
    started: float = field(default_factory=time.monotonic)
    inferred: list[str] | None = None  # choice 0's completed profile block
    profile: list[str] | None = None  # the same, until it has been persisted
    version: int = 0
    write: asyncio.Future[bool] | None = None  # persist(), started once the block is complete


class ChatService:
    def __init__(
        self, backend: ChatBackend, profiles: ProfileService, contract_version: int = 1
    ) -> None:
        self.backend = backend
        self.profiles = profiles
        self.contract_version = contract_version
        self._background: set[asyncio.Task[Any]] = set()
        self._models: tuple[float, list[str]] = (0.0, [])

    async def models(self) -> list[str]:
        fetched_at, names = self._models
        if time.monotonic() - fetched_at > _MODELS_TTL_S or not names:
            names = await self.backend.list_models()
            self._models = (time.monotonic(), names)
        return names

    async def prepare(
        self, body: p.ChatCompletionRequest, principal: Principal, request_id: str
    ) -> Turn:
        if body.model not in await self.models():
            raise NotFoundError(
                f"The model '{body.model}' does not exist.", param="model", code="model_not_found"
            )
        params = self._params(body)
        user = principal.bound_user or body.user or None  # an empty `user` names no one
        if user is not None:
            validate_user(user)
        remember = user is not None and body.rlpa.mode == "on"
        stored = await self.profiles.open(principal.tenant_id, user) if remember and user else None
        history = [{"role": m.role, "content": m.text()} for m in body.messages]
        if stored is not None and not stored.personalization:
            # The user opted out: ordinary chat on the client's messages, nothing read or kept.
            remember, stored = False, None
            params.rlpa_format = False
            messages = [
                {
                    "role": "system" if m["role"] == "developer" else m["role"],
                    "content": m["content"],
                }
                for m in history
            ]
        else:
            messages = rlpa.build_messages(
                history, stored.traits if stored else None, self.contract_version
            )
        return Turn(
            request_id=request_id,
            model=body.model,
            tenant_id=principal.tenant_id,
            user=user,
            stored=stored,
            remember=remember,
            messages=messages,
            params=params,
            n=body.n,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            return_profile=body.rlpa.return_profile,
            version=stored.version if stored else 0,
        )

    def _params(self, body: p.ChatCompletionRequest) -> SamplingParams:
        for name in _NEVER_RELAYED:
            if getattr(body, name) not in (None, False, []):
                raise BadRequestError(
                    f"'{name}' is not supported by this gateway: its results cannot be relayed "
                    "through the profile-aware reply.",
                    param=name,
                    code="unsupported_parameter",
                )
        supported = self.backend.supported_extras()
        extra: dict[str, Any] = {}
        fmt = body.response_format
        if fmt is not None and fmt.get("type") != "text":
            extra["response_format"] = fmt
        if body.logit_bias:
            extra["logit_bias"] = body.logit_bias
        for name in extra:
            if name not in supported:
                raise BadRequestError(
                    f"'{name}' is not supported by the configured backend.",
                    param=name,
                    code="unsupported_parameter",
                )
        for name, value in (body.model_extra or {}).items():
            if name in supported:
                extra[name] = value
            else:
                logger.info("ignoring unknown request field %r", name)
        return SamplingParams(
            max_tokens=body.max_completion_tokens or body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=body.stop_list(),
            seed=body.seed,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            extra=extra,
            rlpa_format=True,
        )

    def _choice_params(self, turn: Turn, index: int) -> SamplingParams:
        if index == 0 or turn.params.seed is None:
            return turn.params
        # Distinct but reproducible choices when the client fixed a seed.
        return SamplingParams(**{**turn.params.__dict__, "seed": turn.params.seed + index})

    async def choice(self, turn: Turn, index: int) -> AsyncIterator[str | Finish]:
        """Visible text deltas of one choice, then its Finish."""
        splitter = rlpa.StreamSplitter()
        params = self._choice_params(turn, index)
        try:
            async for event in self.backend.stream(turn.model, turn.messages, params):
                if isinstance(event, Finish):
                    tail = splitter.finish()
                    if tail.profile is not None and index == 0:
                        turn.inferred = turn.profile = tail.profile
                        self._start_write(turn)
                    if tail.text:
                        yield tail.text
                    if not splitter.format_ok:
                        metrics.FORMAT_FAILURES.inc()
                    metrics.PROMPT_TOKENS.labels(turn.model).inc(event.prompt_tokens)
                    metrics.COMPLETION_TOKENS.labels(turn.model).inc(event.completion_tokens)
                    yield event
                    return
                step = splitter.feed(event.text)
                if step.profile is not None and index == 0:
                    turn.inferred = turn.profile = step.profile
                    self._start_write(turn)
                if step.text:
                    yield step.text
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away. A profile block it already completed is still kept.
            self._start_write(turn)
            raise
        except Exception:
            # The backend failed after the block: its write is under way. The client hears of the
            # failure once that write is done, so that its next turn sees the change.
            if turn.write is not None:
                await asyncio.wait([turn.write])
            raise

    def _in_background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the app's shutdown waits for (a SIGTERM lets pending writes finish)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _start_write(self, turn: Turn) -> None:
        """Store the completed block's change now, overlapped with the rest of the reply."""
        if turn.write is None and turn.remember and turn.profile is not None:
            turn.write = self._in_background(self.persist(turn))
            # Its failure is raised to the client by finish_turn; a client that left is not
            # told, and persist() has logged it.
            turn.write.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def persist(self, turn: Turn) -> bool:
        """Apply choice 0's profile change to the user's latest version. Idempotent per turn.

        True if a write was attempted (which also marks the user as seen). Raises
        ProfileWriteError when the change could not be stored: the client must not be told "ok"
        while what it said was dropped.
        """
        if not turn.remember or turn.user is None or turn.profile is None or turn.stored is None:
            return False
        block, turn.profile = turn.profile, None
        change = rlpa.profile_change(self.contract_version, turn.stored.traits, block)
        if not change:
            metrics.PROFILE_BLOCKS_SKIPPED.labels("unchanged" if block else "empty").inc()
            return False
        try:
            state = await self.profiles.apply_change(
                turn.tenant_id,
                turn.user,
                turn.stored,
                change,
                model_name=turn.model,
                request_id=turn.request_id,
            )
        except Exception as exc:
            metrics.PROFILE_WRITE_FAILURES.inc()
            logger.error("could not store the profile for request %s: %r", turn.request_id, exc)
            raise ProfileWriteError() from exc
        if state is None:
            logger.info("request %s: the user was erased during the turn", turn.request_id)
            # Nothing of the erased profile goes back to the client either.
            turn.remember, turn.stored, turn.version, turn.inferred = False, None, 0, None
        else:
            turn.stored, turn.version = state, state.version
        return True

    async def finish_turn(self, turn: Turn) -> None:
        """After the last choice: wait for the profile write (shielded from a disconnect: it
        goes on in the background) and note the user was seen."""
        self._start_write(turn)
        wrote = await asyncio.shield(turn.write) if turn.write is not None else False
        if not wrote and turn.remember and turn.user is not None:
            self._in_background(self._touch(turn))

    async def _touch(self, turn: Turn) -> None:
        assert turn.user is not None
        try:
            await self.profiles.touch(turn.tenant_id, turn.user)
        except Exception as exc:  # "last seen" is best effort; the profile itself is not
            logger.warning("could not mark user as seen: %r", exc)

    def rlpa_block(self, turn: Turn) -> p.RLPAProfile | None:
        if not turn.return_profile:
            return None
        if turn.remember:
            traits = turn.stored.traits if turn.stored else []
        else:  # a temporary chat: what the model inferred, stored nowhere
            traits = rlpa.profile_change(self.contract_version, [], turn.inferred or []).apply([])
        return p.RLPAProfile(profile=traits, version=turn.version)

    async def aclose(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
