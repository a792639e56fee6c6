"""Counting usage as turns end, writing it in the background, and reading it back.

A turn's counts go into memory (`UsageMeter.record`, no I/O) and are written every
RLPA_USAGE_FLUSH_S seconds in one transaction with the keys' last use, so a turn never waits for
the database or fails because of it. A flush that fails is logged, counted
(`rlpa_usage_write_failures_total`) and retried with the next one; counts a replica still holds
when it is killed (SIGKILL) are lost, those of a replica stopped cleanly are written first.
Every replica adds its own counts to the same rows, so their sums are the whole gateway's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import metrics, observability
from server.auth.service import Principal
from server.db import transaction, utcnow
from server.errors import BadRequestError
from server.pseudonyms import Pseudonyms
from server.ratelimit import RateLimiter
from server.usage import repository
from server.usage import schemas as s

logger = logging.getLogger(__name__)

# (tenant_id, hour, key_id, user_hash, model): a usage_hour row's primary key.
_Cell = tuple[int, datetime, int, str, str]
OTHER_TENANTS = "other"


def as_utc(at: datetime, param: str | None = None) -> datetime:
    """`at` in UTC; a naive time is taken as UTC. BadRequestError for a time that has no UTC
    equivalent (0001-01-01 at +05:00)."""
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError as exc:
        raise BadRequestError(f"'{param}' is out of range.", param=param) from exc


def hour_of(at: datetime, param: str | None = None) -> datetime:
    """The start of the UTC hour `at` falls in."""
    return as_utc(at, param).replace(minute=0, second=0, microsecond=0)


class UsageMeter:
    """Per-turn counts held in memory until the next flush; bounded by `max_pending` rows (past
    it a turn's counts are dropped and counted in `rlpa_usage_dropped_total`, which happens only
    while the database stays unreachable)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        limiter: RateLimiter,
        pseudonyms: Pseudonyms,
        *,
        flush_s: float = 5.0,
        max_pending: int = 10_000,
        tenant_labels: Iterable[str] = (),
    ) -> None:
        self._sessionmaker = sessionmaker
        self._limiter = limiter
        self._pseudonyms = pseudonyms
        self._flush_s = flush_s
        self._max_pending = max_pending
        # Tenants that get a label of their own in the metrics; the rest share "other".
        self._tenant_labels = frozenset(tenant_labels)
        self._pending: dict[_Cell, list[int]] = {}
        self._used: dict[int, datetime] = {}  # key id -> last authenticated request
        self._flushing = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def tenant_label(self, tenant: str) -> str:
        return tenant if tenant in self._tenant_labels else OTHER_TENANTS

    def record(
        self,
        principal: Principal,
        *,
        user: str | None,
        model: str,
        requests: int,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Count what a turn (or one more choice of it) used: in the rollup, the metrics, the
        access log line and the key's tokens-per-minute window."""
        label = self.tenant_label(principal.tenant_name)
        metrics.TENANT_REQUESTS.labels(label).inc(requests)
        metrics.TENANT_TOKENS.labels(label, "prompt").inc(prompt_tokens)
        metrics.TENANT_TOKENS.labels(label, "completion").inc(completion_tokens)
        observability.note_usage(prompt_tokens, completion_tokens)
        tokens = prompt_tokens + completion_tokens
        if tokens and self._limiter.limits_tokens(principal):
            self._spawn(self._limiter.add_tokens(principal, tokens))
        user_hash = self._pseudonyms.of(user) if user is not None else ""
        cell = (principal.tenant_id, hour_of(utcnow()), principal.key_id or 0, user_hash, model)
        self._add(cell, [requests, prompt_tokens, completion_tokens])

    def touch(self, key_id: int | None) -> None:
        """The key authenticated a request now: its last_used_at, at the next flush."""
        if key_id is not None and (key_id in self._used or len(self._used) < self._max_pending):
            self._used[key_id] = utcnow()

    def _add(self, cell: _Cell, counts: list[int], *, early: bool = True) -> None:
        held = self._pending.get(cell)
        if held is not None:
            self._pending[cell] = [a + b for a, b in zip(held, counts, strict=True)]
        elif len(self._pending) < self._max_pending:
            self._pending[cell] = counts
            if early and len(self._pending) >= self._max_pending // 2:
                self._wake.set()  # write early rather than drop counts later
        else:
            metrics.USAGE_DROPPED.inc()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def flush(self) -> None:
        """Write what this replica holds. Never raises: a failed write is kept for the next."""
        async with self._flushing:
            pending, self._pending = self._pending, {}
            used, self._used = self._used, {}
            if pending or used:
                # Shielded: a caller that is cancelled (a request whose client left, shutdown)
                # must not cut a write whose counts it has taken out of memory.
                await asyncio.shield(self._write(pending, used))

    async def _write(self, pending: dict[_Cell, list[int]], used: dict[int, datetime]) -> None:
        rows = [
            dict(zip(_COLUMNS, (*cell, *counts), strict=True)) for cell, counts in pending.items()
        ]
        try:
            async with transaction(self._sessionmaker) as session:
                await repository.add_usage(session, rows)
                await repository.touch_keys(session, list(used.items()))
        except Exception:  # never the turn's failure: the counts wait for the next flush
            metrics.USAGE_WRITE_FAILURES.inc()
            logger.warning(
                "usage not written (%d rows), kept for the next flush", len(rows), exc_info=True
            )
            for cell, counts in pending.items():  # not early: the next try waits its turn
                self._add(cell, counts, early=False)
            for key_id, at in used.items():
                self._used[key_id] = max(at, self._used.get(key_id, at))

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="usage-flush")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def aclose(self) -> None:
        """Stop flushing on a timer, and write what is left."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.flush()


_COLUMNS = (*repository.KEY, *repository.COUNTERS)


@dataclass(frozen=True, kw_only=True)
class UsageQuery:
    filters: repository.Filters
    group_by: tuple[s.GroupBy, ...]
    limit: int


def parse_group_by(text: str) -> tuple[s.GroupBy, ...]:
    """`day,model` as groups; empty: no groups (one row, the total)."""
    groups: list[s.GroupBy] = []
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        found = next((group for group in s.GROUPS if group == part), None)
        if found is None:
            raise BadRequestError(
                f"Cannot group by '{part}': use {', '.join(s.GROUPS)}, comma-separated.",
                param="group_by",
            )
        if found not in groups:
            groups.append(found)
    if "hour" in groups and "day" in groups:
        raise BadRequestError("Group by hour or by day, not both.", param="group_by")
    return tuple(groups)


def _totals(requests: int, prompt: int, completion: int) -> dict[str, int]:
    return {
        "requests": int(requests),
        "prompt_tokens": int(prompt),
        "completion_tokens": int(completion),
        "total_tokens": int(prompt) + int(completion),
    }


async def report(
    sessionmaker: async_sessionmaker[AsyncSession], query: UsageQuery
) -> s.UsageReport:
    groups = query.group_by
    async with transaction(sessionmaker) as session:
        rows = await repository.summarize(session, query.filters, groups, query.limit + 1)
        total = await repository.total(session, query.filters)
        page = rows[: query.limit]
        tenants: dict[int, str] = {}
        keys: dict[int, tuple[str, str]] = {}
        if "tenant" in groups:
            ids = {row._mapping["tenant"] for row in page}
            tenants = await repository.tenant_names(session, ids)
        if "key" in groups:
            keys = await repository.key_labels(session, {row._mapping["key"] for row in page})
    data = []
    for row in page:
        values = row._mapping
        fields: dict[str, Any] = _totals(*(values[name] for name in repository.COUNTERS))
        if "hour" in groups:
            fields["hour"] = hour_of(values["hour"])
        if "day" in groups:
            fields["day"] = repository.as_day(values["day"])
        if "tenant" in groups:
            fields["tenant"] = tenants.get(values["tenant"], str(values["tenant"]))
        if "key" in groups and values["key"]:
            name, prefix = keys.get(values["key"], (None, None))
            fields.update(key_id=values["key"], key_name=name, key_prefix=prefix)
        if "user" in groups:
            fields["user_hash"] = values["user"] or None
        if "model" in groups:
            fields["model"] = values["model"]
        data.append(s.UsageRow(**fields))
    return s.UsageReport(
        group_by=list(groups),
        since=query.filters.since,
        until=query.filters.until,
        data=data,
        total=s.UsageTotals(**_totals(*(total._mapping[name] for name in repository.COUNTERS))),
        has_more=len(rows) > query.limit,
    )
