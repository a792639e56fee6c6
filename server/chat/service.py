"""One chat turn: identity -> stored profile -> RLPA prompt -> backend -> splitter -> persist.

The visible reply streams as the model writes it; the profile block is held back. The block's
change is written as soon as the block is complete, while the reply is still being generated,
and the turn's last chunk (or whole response) waits for that commit. A turn that fails at the
backend before its block is complete writes nothing; once the block is complete its change is
stored whatever happens to the rest of the reply, as when the client disconnects.

With `write_behind`, a turn that does not report its version (`return_profile`) does not wait for
the commit: the reply goes out while the write finishes in the background. The same user's next
turn waits for that write before it reads the profile, so it sees the change: on this process
through the write's task, on any replica through a marker in the shared cache (Redis), set before
the reply goes out. Where no marker can be set (Redis down), the turn waits for its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server import metrics, rlpa
from server.auth.service import Principal, validate_user
from server.backends.base import ChatBackend, Finish, SamplingParams
from server.db import utcnow
from server.errors import NotFoundError, ProfileWriteError, ProfileWriteUnknownError
from server.profiles.service import ProfileService, ProfileState

logger = logging.getLogger(__name__)

_MODELS_TTL_S = 30.0


@dataclass
class TurnRequest:
    """What the client asks of one turn, in the gateway's terms: the wire layer builds it."""

    model: str
    history: list[dict[str, str]]  # {"role", "content"}, in the client's order
    params: SamplingParams
    n: int = 1
    user: str | None = None
    remember: bool = True  # the client lets the turn read and write the stored profile
    include_usage: bool = False
    return_profile: bool = False
    # When the gateway received the request: an erasure committed after it still wins.
    arrived_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ProfileView:
    """The profile a turn leaves behind, for a client that asked to see it."""

    traits: list[str]
    version: int


@dataclass
class TurnOutcome:
    """What the turn has done to the profile so far: the choices and persist() fill it in."""

    stored: ProfileState | None  # the user's profile: as opened, then as written
    remember: bool  # read and write the stored profile (false once the user was erased)
    version: int = 0
    inferred: list[str] | None = None  # choice 0's completed profile block
    profile: list[str] | None = None  # the same, until it has been persisted
    write: asyncio.Future[bool] | None = None  # persist(), started once the block is complete


@dataclass(frozen=True)
class Turn:
    """The turn's plan, fixed by prepare(), and its outcome, which the turn fills in."""

    request_id: str
    model: str
    tenant_id: int
    user: str | None
    messages: list[dict[str, str]]
    params: SamplingParams
    n: int
    include_usage: bool
    return_profile: bool
    arrived_at: datetime
    outcome: TurnOutcome
    started: float = field(default_factory=time.monotonic)


class ChatService:
    def __init__(
        self,
        backend: ChatBackend,
        profiles: ProfileService,
        contract_version: int = 1,
        write_behind: bool = False,
        write_wait_s: float = 6.0,
    ) -> None:
        self.backend = backend
        self.profiles = profiles
        self.contract_version = contract_version
        self.write_behind = write_behind
        # How long a write-behind write may hold the user's next turn (and its marker live):
        # past the database's own timeouts, the write has failed or its replica died.
        self.write_wait_s = write_wait_s
        self._background: set[asyncio.Task[Any]] = set()
        # The write each user's latest turn left in flight: their next turn waits for it.
        self._pending: dict[tuple[int, str], asyncio.Future[Any]] = {}
        self._models: tuple[float, list[str]] = (0.0, [])

    async def models(self) -> list[str]:
        fetched_at, names = self._models
        if time.monotonic() - fetched_at > _MODELS_TTL_S or not names:
            names = await self.backend.list_models()
            self._models = (time.monotonic(), names)
        return names

    async def prepare(self, request: TurnRequest, principal: Principal, request_id: str) -> Turn:
        if request.model not in await self.models():
            raise NotFoundError(
                f"The model '{request.model}' does not exist.",
                param="model",
                code="model_not_found",
            )
        params = request.params
        user = principal.bound_user or request.user or None  # an empty `user` names no one
        if user is not None:
            validate_user(user)
        remember = user is not None and request.remember
        if user is not None and (pending := self._pending.get((principal.tenant_id, user))):
            await asyncio.wait([pending])  # read this user's own last write (write_behind)
        if user is not None and self.write_behind and self.profiles.cache.shared:
            await self.profiles.await_writes(principal.tenant_id, user, self.write_wait_s)
        stored = None
        if remember and user is not None:
            stored = await self.profiles.open(principal.tenant_id, user, request.arrived_at)
            # None: erased after this request arrived. Answered, as a temporary chat.
            remember = stored is not None
        history = request.history
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
            model=request.model,
            tenant_id=principal.tenant_id,
            user=user,
            messages=messages,
            params=params,
            n=request.n,
            include_usage=request.include_usage,
            return_profile=request.return_profile,
            arrived_at=request.arrived_at,
            outcome=TurnOutcome(
                stored=stored, remember=remember, version=stored.version if stored else 0
            ),
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
                        turn.outcome.inferred = turn.outcome.profile = tail.profile
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
                    turn.outcome.inferred = turn.outcome.profile = step.profile
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
            if turn.outcome.write is not None:
                await asyncio.wait([turn.outcome.write])
            raise

    def _in_background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the app's shutdown waits for (a SIGTERM lets pending writes finish)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _start_write(self, turn: Turn) -> None:
        """Store the completed block's change now, overlapped with the rest of the reply."""
        out = turn.outcome
        if out.write is None and out.remember and out.profile is not None:
            out.write = self._in_background(self.persist(turn))
            # Its failure is raised to the client by finish_turn; a client that left is not
            # told, and persist() has logged it.
            out.write.add_done_callback(lambda task: task.cancelled() or task.exception())
            self._track(turn, out.write)

    def _track(self, turn: Turn, task: asyncio.Future[Any]) -> None:
        assert turn.user is not None  # remember implies a user
        key = (turn.tenant_id, turn.user)
        self._pending[key] = task

        def settled(_: asyncio.Future[Any]) -> None:
            if self._pending.get(key) is task:
                del self._pending[key]

        task.add_done_callback(settled)

    async def persist(self, turn: Turn) -> bool:
        """Apply choice 0's profile change to the user's latest version. Idempotent per turn,
        and per request id across retries.

        True if a write was attempted (which also marks the user as seen). Raises
        ProfileWriteError when the change was not stored, ProfileWriteUnknownError when it may
        have been: the client must not be told "ok" while what it said was dropped.
        """
        out = turn.outcome
        if not out.remember or turn.user is None or out.profile is None or out.stored is None:
            return False
        block, out.profile = out.profile, None
        change = rlpa.profile_change(self.contract_version, out.stored.traits, block)
        if not change:
            metrics.PROFILE_BLOCKS_SKIPPED.labels("unchanged" if block else "empty").inc()
            return False
        try:
            state = await self.profiles.apply_change(
                turn.tenant_id,
                turn.user,
                out.stored,
                change,
                request_id=turn.request_id,
                arrived_at=turn.arrived_at,
                model_name=turn.model,
            )
        except Exception as exc:
            # apply_change says whether anything reached the store; anything else it raised
            # happened after it began, so the outcome is unknown.
            error = exc if isinstance(exc, ProfileWriteError) else ProfileWriteUnknownError()
            metrics.PROFILE_WRITE_FAILURES.labels(error.outcome).inc()
            logger.error(
                "profile of request %s %s: %r",
                turn.request_id,
                "may not be stored" if error.outcome == "unknown" else "not stored",
                exc.__cause__ or exc,
            )
            if error is exc:
                raise
            raise error from exc
        if state is None:
            logger.info("request %s: the user was erased during the turn", turn.request_id)
            # Nothing of the erased profile goes back to the client either.
            out.remember, out.stored, out.version, out.inferred = False, None, 0, None
        else:
            out.stored, out.version = state, state.version
        return True

    async def finish_turn(self, turn: Turn) -> None:
        """After the last choice: wait for the profile write (shielded from a disconnect: it
        goes on in the background) and note the user was seen. With write_behind, the reply
        goes out first once every replica can see that the write is in flight."""
        out = turn.outcome
        self._start_write(turn)
        if (
            out.write is not None
            and self.write_behind
            and not turn.return_profile
            and await self._announce(turn, out.write)
        ):
            return
        wrote = await asyncio.shield(out.write) if out.write is not None else False
        if not wrote and out.remember and turn.user is not None:
            self._in_background(self._touch(turn))

    async def _announce(self, turn: Turn, write: asyncio.Future[bool]) -> bool:
        """Leave `write` to finish after the reply, if the user's next turn, on any replica,
        will wait for it; False when that cannot be promised (the caller waits instead)."""
        assert turn.user is not None  # a write implies a user
        if write.done() or not await self.profiles.begin_write(
            turn.tenant_id, turn.user, turn.request_id, self.write_wait_s
        ):
            return False
        settle = self._in_background(self._settle(turn, write))
        self._track(turn, settle)
        return True

    async def _settle(self, turn: Turn, write: asyncio.Future[bool]) -> None:
        """write_behind: the rest of finish_turn, after the reply went out. A failed write was
        logged and counted by persist(); no client is left to tell."""
        assert turn.user is not None
        try:
            wrote = await write
        except ProfileWriteError:
            wrote = True
        finally:
            await self.profiles.end_write(turn.tenant_id, turn.user, turn.request_id)
        if not wrote and turn.outcome.remember:
            await self._touch(turn)

    async def _touch(self, turn: Turn) -> None:
        assert turn.user is not None
        try:
            await self.profiles.touch(turn.tenant_id, turn.user)
        except Exception as exc:  # "last seen" is best effort; the profile itself is not
            logger.warning("could not mark user as seen: %r", exc)

    def rlpa_block(self, turn: Turn) -> ProfileView | None:
        out = turn.outcome
        if not turn.return_profile:
            return None
        if out.remember:
            traits = out.stored.traits if out.stored else []
        else:  # a temporary chat: what the model inferred, stored nowhere
            traits = rlpa.profile_change(self.contract_version, [], out.inferred or []).apply([])
        return ProfileView(traits=traits, version=out.version)

    async def aclose(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
