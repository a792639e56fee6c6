"""A chat turn's profile write: started as soon as choice 0's block is complete, overlapped with
the rest of the reply, and settled before the turn ends (or, write-behind, after it).

With `write_behind`, a turn that does not report its version does not wait for the commit: the
reply goes out while the write finishes in the background. The same user's next turn waits for
that write before it reads the profile, so it sees the change: on this process through the
write's task, on any replica through a marker in the shared cache (Redis), set before the reply
goes out. Where no marker can be set (Redis down), the turn waits for its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server import metrics, rlpa
from server.errors import ProfileWriteError, ProfileWriteUnknownError
from server.profiles.state import ProfileState
from server.profiles.turns import TurnProfiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WriteTarget:
    """Whose profile a turn may change, and the version it read."""

    tenant_id: int
    user: str
    read: ProfileState
    request_id: str  # a retry with the same id writes once
    model: str
    arrived_at: datetime  # an erasure committed after it still wins


@dataclass(frozen=True)
class Stored:
    """What the write left: the user's profile after it (None: the user was erased meanwhile),
    and whether a write was attempted (which also marks the user as seen)."""

    state: ProfileState | None
    wrote: bool


class ProfileWrites:
    def __init__(
        self,
        profiles: TurnProfiles,
        *,
        contract_version: int,
        write_behind: bool,
        write_wait_s: float,
    ) -> None:
        self.profiles = profiles
        self.contract_version = contract_version
        self.write_behind = write_behind
        # How long a write-behind write may hold the user's next turn (and its marker live):
        # past the database's own timeouts, the write has failed or its replica died.
        self.write_wait_s = write_wait_s
        self._background: set[asyncio.Task[Any]] = set()
        # The write each user's latest turn left in flight: their next turn waits for it.
        self._pending: dict[tuple[int, str], asyncio.Future[Any]] = {}

    async def wait_for_earlier(self, tenant_id: int, user: str) -> None:
        """Before a turn reads the user's profile: let the user's own writes still in flight
        land, so that it reads what their earlier, answered turns stored."""
        if pending := self._pending.get((tenant_id, user)):
            await asyncio.wait([pending])
        if self.write_behind and self.profiles.cache.shared:
            await self.profiles.await_writes(tenant_id, user, self.write_wait_s)

    def start(
        self,
        target: WriteTarget,
        block: list[str],
        *,
        adjust: Callable[[rlpa.ProfileChange], rlpa.ProfileChange] | None = None,
    ) -> asyncio.Future[Stored] | None:
        """Store the completed block's change (as `adjust` leaves it) now, overlapped with the
        rest of the reply; None when it changes nothing against what the turn read."""
        change = rlpa.profile_change(self.contract_version, target.read.traits, block)
        if adjust is not None:
            change = adjust(change)
        if change.apply(target.read.traits) == target.read.traits:  # restates what is stored
            metrics.PROFILE_BLOCKS_SKIPPED.labels("unchanged" if block else "empty").inc()
            return None
        return self._begin(target, change, "model")

    def start_change(
        self, target: WriteTarget, change: rlpa.ProfileChange, *, source: str
    ) -> asyncio.Future[Stored] | None:
        """Store a change the gateway made itself (a memory command: `source` "user"); None
        when it changes nothing."""
        if change.apply(target.read.traits) == target.read.traits:
            return None
        return self._begin(target, change, source)

    def _begin(
        self, target: WriteTarget, change: rlpa.ProfileChange, source: str
    ) -> asyncio.Future[Stored]:
        write = self._in_background(self._persist(target, change, source))
        # Its failure reaches the client through settle(); a client that left is not told, and
        # _persist has logged it.
        write.add_done_callback(lambda task: task.cancelled() or task.exception())
        self._track(target, write)
        return write

    async def settle(
        self,
        target: WriteTarget | None,
        write: asyncio.Future[Stored] | None,
        *,
        return_profile: bool,
    ) -> Stored | None:
        """After the last choice: wait for the write (shielded from a disconnect: it goes on in
        the background) and note the user was seen. With write_behind, a turn that does not
        report its profile goes first, once every replica can see the write in flight (None)."""
        if target is None:
            return None
        if (
            write is not None
            and self.write_behind
            and not return_profile
            and await self._announce(target, write)
        ):
            return None
        stored = await asyncio.shield(write) if write is not None else Stored(target.read, False)
        if not stored.wrote:
            self._in_background(self._touch(target))
        return stored

    async def aclose(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _in_background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the app's shutdown waits for (a SIGTERM lets pending writes finish)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _track(self, target: WriteTarget, task: asyncio.Future[Any]) -> None:
        key = (target.tenant_id, target.user)
        self._pending[key] = task

        def settled(_: asyncio.Future[Any]) -> None:
            if self._pending.get(key) is task:
                del self._pending[key]

        task.add_done_callback(settled)

    async def _persist(
        self, target: WriteTarget, change: rlpa.ProfileChange, source: str
    ) -> Stored:
        """Apply the block's change to the user's latest version. Idempotent per request id
        across retries.

        Raises ProfileWriteError when the change was not stored, ProfileWriteUnknownError when it
        may have been: the client must not be told "ok" while what it said was dropped.
        """
        try:
            state = await self.profiles.apply_change(
                target.tenant_id,
                target.user,
                target.read,
                change,
                request_id=target.request_id,
                arrived_at=target.arrived_at,
                model_name=target.model,
                source=source,
            )
        except Exception as exc:
            # apply_change says whether anything reached the store; anything else it raised
            # happened after it began, so the outcome is unknown.
            error = exc if isinstance(exc, ProfileWriteError) else ProfileWriteUnknownError()
            metrics.PROFILE_WRITE_FAILURES.labels(error.outcome).inc()
            logger.error(
                "profile of request %s %s: %r",
                target.request_id,
                "may not be stored" if error.outcome == "unknown" else "not stored",
                exc.__cause__ or exc,
            )
            if error is exc:
                raise
            raise error from exc
        if state is None:
            logger.info("request %s: the user was erased during the turn", target.request_id)
        return Stored(state, wrote=True)

    async def _announce(self, target: WriteTarget, write: asyncio.Future[Stored]) -> bool:
        """Leave `write` to finish after the reply, if the user's next turn, on any replica,
        will wait for it; False when that cannot be promised (the caller waits instead)."""
        if write.done() or not await self.profiles.begin_write(
            target.tenant_id, target.user, target.request_id, self.write_wait_s
        ):
            return False
        self._track(target, self._in_background(self._settle_behind(target, write)))
        return True

    async def _settle_behind(self, target: WriteTarget, write: asyncio.Future[Stored]) -> None:
        """write_behind: the rest of settle(), after the reply went out. A failed write was
        logged and counted by _persist; no client is left to tell."""
        try:
            wrote = (await write).wrote
        except ProfileWriteError:
            wrote = True
        finally:
            await self.profiles.end_write(target.tenant_id, target.user, target.request_id)
        if not wrote:
            await self._touch(target)

    async def _touch(self, target: WriteTarget) -> None:
        try:
            await self.profiles.touch(target.tenant_id, target.user)
        except Exception as exc:  # "last seen" is best effort; the profile itself is not
            logger.warning("could not mark user as seen: %r", exc)
