"""What the fault tests share: settings for a live gateway over throwaway servers, raw chat turns
that record what the client saw, concurrent clients, and what PostgreSQL holds afterwards.

Turns go over raw HTTP (httpx) rather than the openai client: these tests assert wire details
the client hides, such as the Retry-After header and where an error event falls in the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.upstreams import upstream_settings

# What issue 8 promises while a store is away: chats answer within FAST_S, /ready within READY_S.
FAST_S = 3.0
READY_S = 2.0
# Scheduling noise on a small shared test machine (2 cores run the gateway, the upstream, the
# clients and the databases), not a tolerance in the promise.
SLACK_S = 0.5
REQUEST_TIMEOUT_S = 15.0
# Well under the 64-trait cap: every turn's fact must fit in its user's profile.
TURNS_PER_USER = 25
MAX_TURNS_PER_CLIENT = 1000  # only a bound: the phases end the load
# A client backs off a little after a refusal, as a real one would (and as Retry-After asks).
BACKOFF_S = 0.2
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def gateway_settings(
    upstream_url: str, database_url: str, redis_url: str | None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_key_prefix": f"rlpa-faults-{uuid.uuid4().hex[:8]}:",
        "admin_api_key": ADMIN_KEY,
        "auto_migrate": False,
        "db_connect_timeout_s": 1.0,
        "db_statement_timeout_s": 1.0,
        "db_pool_timeout_s": 1.0,
        "upstream_read_timeout_s": 10.0,
    }
    values.update(overrides)
    return upstream_settings([upstream_url], **values)


@dataclass
class Outcome:
    """One chat turn as its client saw it."""

    user: str
    message: str  # the turn's last user message (the fact the `remembering` upstream adds)
    stream: bool
    request_id: str | None = None  # the X-Request-Id sent, else the one the gateway answered
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0
    status: int = 0  # 0: no HTTP answer at all (see `error`)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the JSON body, or the list of streamed `data:` payloads
    error: dict[str, Any] | None = None  # error body, the stream's error event, or the transport's
    version: int | None = None  # rlpa.version of a completed turn that asked for the profile
    profile: list[str] | None = None  # rlpa.profile, likewise

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def acknowledged(self) -> bool:
        """The client was told the turn went well: a 200 that carried no error."""
        return self.status == 200 and self.error is None

    @property
    def refused_as_unavailable(self) -> bool:
        """A 503, or (once a stream has started) its error event."""
        return self.status == 503 or (self.stream and self.status == 200 and bool(self.error))

    def __str__(self) -> str:
        error = json.dumps(self.error)[:200] if self.error else ""
        kind = "stream" if self.stream else "chat"
        request = f" [{self.request_id}]" if self.request_id else ""
        return (
            f"{kind} {self.user}/{self.message!r}{request}: {self.status} "
            f"in {self.elapsed:.2f}s {error}"
        )


# httpx's `trace` request extension: called with each event's name and details.
Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


async def chat(
    http: httpx.AsyncClient,
    gateway: str,
    user: str,
    message: str,
    *,
    stream: bool = False,
    key: str | None = ADMIN_KEY,
    request_id: str | None = None,
    return_profile: bool = True,
    trace: Trace | None = None,
) -> Outcome:
    """One turn whose last user message is `message` (the `remembering` upstream adds it to the
    profile). `key`: the bearer key sent (None: no Authorization header of the turn's own);
    `request_id`: sent as X-Request-Id (None: the gateway makes one up); `trace`: httpx's trace
    extension (e.g. to learn when the request was sent)."""
    body = {
        "model": "scripted",
        "user": user,
        "messages": [{"role": "user", "content": message}],
        "stream": stream,
        "rlpa": {"return_profile": return_profile},
    }
    outcome = Outcome(user, message, stream, request_id)
    headers: dict[str, str] = {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    extensions = {"trace": trace} if trace is not None else None
    url = f"{gateway}/v1/chat/completions"
    try:
        async with http.stream(
            "POST", url, json=body, headers=headers, extensions=extensions
        ) as response:
            outcome.status = response.status_code
            outcome.headers = dict(response.headers)
            outcome.request_id = request_id or outcome.headers.get("x-request-id")
            if response.status_code == 200 and stream:
                events = [
                    line[len("data: ") :]
                    async for line in response.aiter_lines()
                    if line.startswith("data: ")
                ]
                _read_events(outcome, events)
            else:
                await response.aread()
                outcome.body = response.json()
                if response.status_code == 200:
                    _read_profile(outcome, outcome.body.get("rlpa"))
                else:
                    outcome.error = outcome.body
    except httpx.HTTPError as exc:
        outcome.error = {"transport": repr(exc)}
    outcome.ended = time.monotonic()
    return outcome


def _read_profile(outcome: Outcome, rlpa: Any) -> None:
    if isinstance(rlpa, dict):
        outcome.version = rlpa.get("version")
        outcome.profile = rlpa.get("profile")


def _read_events(outcome: Outcome, events: list[str]) -> None:
    outcome.body = events
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    errors = [chunk for chunk in chunks if "error" in chunk]
    if errors:
        outcome.error = errors[0]
    elif chunks:
        _read_profile(outcome, chunks[-1].get("rlpa"))


def stream_contract_violations(outcome: Outcome) -> list[str]:
    """A 200 stream ends with `[DONE]`; an error event comes right before it, and then no chunk
    ever said the turn finished; a stream without one has a finish chunk and the profile."""
    if not (outcome.stream and outcome.status == 200):
        return []
    events: list[str] = outcome.body or []
    found = []
    if not events or events[-1] != "[DONE]" or events.count("[DONE]") != 1:
        found.append("does not end with exactly one [DONE]")
    chunks = [json.loads(event) for event in events if event != "[DONE]"]
    finished = any(c.get("finish_reason") for chunk in chunks for c in chunk.get("choices", []))
    if outcome.error is not None:
        if "error" not in chunks[-1]:
            found.append("its error event is not the last event before [DONE]")
        if finished:
            found.append("a finish chunk was sent although the turn then failed")
    else:
        if not finished:
            found.append("no finish chunk")
        if outcome.version is None:
            found.append("no rlpa profile on the last chunk")
    return [f"{outcome}: {problem}" for problem in found]


def error_shape_violations(outcome: Outcome) -> list[str]:
    """A refusal is OpenAI's error object; a 503 also says when to retry."""
    if outcome.acknowledged:
        return []
    found = []
    error = (outcome.error or {}).get("error")
    if not isinstance(error, dict) or not {"message", "type", "param", "code"} <= error.keys():
        found.append("not an OpenAI error object")
    if outcome.status == 503 and not outcome.headers.get("retry-after", "").isdigit():
        found.append("a 503 without a Retry-After header")
    return [f"{outcome}: {problem}" for problem in found]


Phases = Callable[[], Awaitable[None]]


async def under_load(
    gateway: str, tag: str, phases: Phases, *, clients: int = 4, pause_s: float = 0.02
) -> list[Outcome]:
    """Run `clients` clients, each sending turns back to back (odd ones streaming), while
    `phases` runs; then let every client finish its turn in flight. Each client moves to a fresh
    user every TURNS_PER_USER turns, and backs off BACKOFF_S after a refusal."""
    done = asyncio.Event()
    outcomes: list[Outcome] = []

    async def client(http: httpx.AsyncClient, index: int) -> None:
        for turn in range(MAX_TURNS_PER_CLIENT):
            if done.is_set():
                return
            user = f"{tag}-c{index}-u{turn // TURNS_PER_USER}"
            message = f"fact {turn} of client {index}"
            outcome = await chat(http, gateway, user, message, stream=index % 2 == 1)
            outcomes.append(outcome)
            await asyncio.sleep(pause_s if outcome.acknowledged else BACKOFF_S)

    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        tasks = [asyncio.create_task(client(http, index)) for index in range(clients)]
        try:
            await phases()
        finally:
            done.set()
            await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT_S + 5)
    return outcomes


async def stored_versions(dsn: str, users: set[str]) -> dict[str, dict[int, list[str]]]:
    """Every stored profile version of `users`: user -> version -> traits."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT u.external_id, v.version, v.traits FROM end_user u "
            "JOIN profile_version v ON v.end_user_id = u.id WHERE u.external_id = ANY($1::text[])",
            sorted(users),
            timeout=5,
        )
    finally:
        await conn.close()
    stored: dict[str, dict[int, list[str]]] = {}
    for user, version, traits in rows:
        if isinstance(traits, str):  # a json column comes back as text from asyncpg
            traits = json.loads(traits)
        stored.setdefault(user, {})[version] = traits
    return stored


async def lost_acknowledged_turns(dsn: str, outcomes: list[Outcome]) -> list[str]:
    """Acknowledged turns whose version is not in PostgreSQL with the fact they added, facts
    missing from their user's latest version, and gaps in version numbers."""
    stored = await stored_versions(dsn, {o.user for o in outcomes})
    found = []
    for outcome in outcomes:
        if not outcome.acknowledged:
            continue
        versions = stored.get(outcome.user, {})
        if outcome.version not in versions:
            found.append(f"{outcome}: version {outcome.version} is not stored")
        elif outcome.message not in versions[outcome.version]:
            found.append(f"{outcome}: version {outcome.version} lacks the fact")
        elif outcome.message not in versions[max(versions)]:
            found.append(f"{outcome}: the latest version lost the fact")
    for user, versions in stored.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            found.append(f"{user}: versions {sorted(versions)} have gaps")
    return found


def started_between(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    return [o for o in outcomes if start <= o.started <= end]
