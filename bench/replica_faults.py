"""Black-box repros of faults between two gateway replicas: how often each defect shows. Prints
a table; not a test (tests/faults/test_replicas.py asserts the same trials never find one).

    PYTHONPATH=. .venv/bin/python bench/replica_faults.py                  # every case
    PYTHONPATH=. .venv/bin/python bench/replica_faults.py --trials 3 --cases 1,opt-out
    git worktree add /tmp/before <commit>
    PYTHONPATH=. .venv/bin/python bench/replica_faults.py --source /tmp/before

Two `rlpa serve` processes of the `--source` checkout (cwd and PYTHONPATH that checkout, so an
older commit can be measured) run over one throwaway PostgreSQL (migrated by that checkout's own
`rlpa db upgrade`), one Redis persisting to disk as docker-compose.yml runs it, and the tests'
scripted OpenAI upstream (tests.fixtures.replicas). Each case gets a fresh pair of replicas and a
fresh Redis; each trial a fresh end user, and puts back whatever it stopped or froze. The trials
speak only HTTP to the replicas, Redis' protocol to Redis and SQL to PostgreSQL: nothing of the
measured `server` package is imported here.

A trial finds the defect or not; a trial whose setup did not go as planned (a precondition, such
as the turns being in flight when the erase ran) measured nothing and is counted as not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.turns import Outcome, chat
from tests.fixtures.procs import ThrowawayPostgres, started
from tests.fixtures.replicas import (
    ADMIN,
    REQUEST_TIMEOUT_S,
    ROOT,
    PersistentRedis,
    ReplicaConfig,
    Replicas,
    error_message,
    execute,
    fetchval,
    migrate_database,
    profile_in_prompt,
    stored_user,
    two_replicas_running,
    upstream_requests,
    user_path,
)
from tests.fixtures.upstreams import ScriptedUpstream, remembering, stored_traits


class NotRun(Exception):
    """The trial's setup did not go as planned: it measured nothing."""


_notes: list[str] = []


def note(what: str) -> None:
    """What a trial saw besides its verdict (printed per trial with --verbose)."""
    _notes.append(what)


def require(condition: bool, what: str) -> None:
    if not condition:
        raise NotRun(what)


def fresh_user(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def _last_user_message(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user"))


def _output(lines: list[str]) -> list[str]:
    """A contract-v2 output, one block line per delta (as `remembering` sends it)."""
    block = [f"- {line}\n" for line in lines]
    return ["<profile>\n", *block, "</profile>\n\n<response>\n", "ok\n</response>"]


def forgetting(body: dict[str, Any]) -> list[str]:
    """A contract-v2 model that writes only what the last user message changes: `forget: X`
    becomes `- forget: X` (drop the stored trait X); anything else is one new trait."""
    message = _last_user_message(body)
    match = re.fullmatch(r"forget:\s*(.+)", message.strip())
    return _output([f"forget: {match.group(1)}" if match else message])


def restating(body: dict[str, Any]) -> list[str]:
    """A model whose block only restates the stored profile it was shown: nothing changes."""
    return _output(stored_traits(body))


async def _until_ok(
    attempt: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], tries: int = 10
) -> Any:
    """`attempt()` until `ok` says so (a replica whose pool meets a restarted PostgreSQL may
    answer 503 once); the last answer."""
    result = None
    for _ in range(tries):
        result = await attempt()
        if ok(result):
            return result
        await asyncio.sleep(0.3)
    return result


async def _put_profile(http: httpx.AsyncClient, base: str, user: str, traits: list[str]) -> None:
    put = await _until_ok(
        lambda: http.put(user_path(base, user, "/profile"), json={"traits": traits}, headers=ADMIN),
        lambda r: r.status_code != 503,
    )
    require(put.status_code == 200, f"PUT profile: {put.status_code} {put.text[:200]}")


async def _erase(http: httpx.AsyncClient, base: str, user: str) -> None:
    erased = await http.delete(user_path(base, user), headers=ADMIN)
    require(erased.status_code == 204, f"erase: {erased.status_code} {erased.text[:200]}")


async def _settle(upstream: ScriptedUpstream, seconds: float = 5.0) -> None:
    """Until the upstream has no request in flight (bounded)."""
    for _ in range(int(seconds / 0.02)):
        if not upstream.in_flight:
            return
        await asyncio.sleep(0.02)


def _cached_keys(r: Replicas) -> int:
    """How many keys Redis holds under the replicas' prefix."""
    with r.redis.client() as client:
        return sum(1 for _ in client.scan_iter(match=f"{r.redis_prefix}*", count=1000))


# --- 1. redis-snapshot --------------------------------------------------------------------------


async def redis_snapshot(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("snapshot")
    await _put_profile(http, r.a, user, [f"{user} drinks green tea", f"{user} lives in Oslo"])
    r.upstream.script.respond = remembering
    read = await chat(http, r.b, user, f"{user} reads the profile")
    require(read.acknowledged, f"the read turn: {read}")
    before = await stored_user(r.dsn, user)
    require(before is not None and bool(before.current), "no profile stored before the SAVE")
    assert before is not None
    erased = before.current
    await asyncio.to_thread(r.redis.save)
    await _erase(http, r.a, user)
    await asyncio.to_thread(r.redis.restart)  # SIGKILL: back with the snapshot
    restored = await asyncio.to_thread(_cached_keys, r)
    require(restored > 0, "the snapshot held no cache entry of the replicas")

    found = []
    got = await http.get(user_path(r.b, user, "/profile"), headers=ADMIN)
    if got.status_code == 200 and set(got.json().get("traits", [])) & set(erased):
        found.append(f"GET profile after the restore: 200 {got.json()['traits']}")
    message = f"{user} is back after the erase"
    later = await chat(http, r.a, user, message)
    for body in upstream_requests(r.upstream, message):
        if shown := profile_in_prompt(body, erased):
            found.append(f"the next turn's prompt held erased traits {shown}")
            break
    note(
        f"{restored} keys restored; then GET profile {got.status_code}, the next turn "
        f"{later.status}"
    )
    if later.acknowledged:
        stored = await stored_user(r.dsn, user)
        if stored is None or message not in stored.current:
            state = "no user row" if stored is None else f"current traits {stored.current}"
            found.append(f"the next turn was answered 200 (version {later.version}) but {state}")
    return "; ".join(found) or None


# --- 2. opt-out ---------------------------------------------------------------------------------

OPT_OUT_WARMUP_S = 0.5
OPT_OUT_WATCH_S = 2.0
OPT_OUT_CLIENTS = 3
OPT_OUT_MAX_TURNS = 300  # per client: only a bound, the watch window ends the loop


async def opt_out(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("optout")
    await _put_profile(http, r.a, user, [f"{user} is vegetarian", f"{user} has two cats"])
    r.upstream.script.respond = remembering
    turns: list[Outcome] = []
    done = asyncio.Event()

    async def client(number: int) -> None:
        for i in range(OPT_OUT_MAX_TURNS):
            if done.is_set():
                return
            turns.append(await chat(http, r.b, user, f"{user} client {number} turn {i}"))

    tasks = [asyncio.create_task(client(n)) for n in range(OPT_OUT_CLIENTS)]
    try:
        await asyncio.sleep(OPT_OUT_WARMUP_S)
        patched = await http.patch(
            user_path(r.a, user), json={"personalization": False}, headers=ADMIN
        )
        opted_out_at = time.monotonic()
        require(patched.status_code == 200, f"opt-out: {patched.status_code} {patched.text}")
        stored = await stored_user(r.dsn, user)
        await asyncio.sleep(OPT_OUT_WATCH_S)
    finally:
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT_S + 5)
    require(stored is not None and not stored.personalization, "the opt-out was not stored")
    assert stored is not None
    profile = sorted({t for v in stored.versions for t in v.traits})
    after = [t for t in turns if t.started >= opted_out_at]
    require(len(after) >= OPT_OUT_CLIENTS, f"only {len(after)} turns started after the opt-out")
    note(f"{len(after)} of {len(turns)} turns started after the opt-out")
    found = []
    for turn in after:
        shown = set()
        for body in upstream_requests(r.upstream, turn.message):
            shown |= {*stored_traits(body), *profile_in_prompt(body, profile)}
        returned = [t for t in turn.profile or [] if t in profile]
        if shown or returned:
            late = turn.started - opted_out_at
            found.append(
                f"a turn started {late:.2f}s after the opt-out: prompt {sorted(set(shown))}, "
                f"returned {returned}"
            )
    if not found:
        return None
    return f"{len(found)} of {len(after)} later turns; first: {found[0]}"


# --- 3. erase-in-flight -------------------------------------------------------------------------

IN_FLIGHT_TURNS = 30
IN_FLIGHT_STALL_S = 0.3  # the upstream's pause before it answers
ARRIVE_S = 5.0  # the bound on waiting for every turn to have read its profile


async def erase_in_flight(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("inflight")
    await _put_profile(http, r.a, user, [f"{user} runs marathons"])
    before = await stored_user(r.dsn, user)
    assert before is not None
    r.upstream.script.respond = remembering
    r.upstream.script.stall_at, r.upstream.script.stall_s = -1, IN_FLIGHT_STALL_S
    completed_before = r.upstream.completed
    sent = 0
    all_sent = asyncio.Event()

    async def trace(event: str, info: dict[str, Any]) -> None:
        nonlocal sent
        if event == "http11.send_request_body.complete":
            sent += 1
            if sent == IN_FLIGHT_TURNS:
                all_sent.set()

    tasks = [
        asyncio.create_task(chat(http, r.a, user, f"{user} turn {i}", trace=trace))
        for i in range(IN_FLIGHT_TURNS)
    ]
    try:
        try:
            await asyncio.wait_for(all_sent.wait(), 10)
        except TimeoutError:
            raise NotRun(f"only {sent} of {IN_FLIGHT_TURNS} requests were sent") from None
        # Every turn has been received and read its profile (it is at the upstream, or done):
        # a request still on its way when the erase commits may start the user anew, by design
        # (tests/faults/test_replica_races.py forces one received but not yet read).
        deadline = time.monotonic() + ARRIVE_S
        while time.monotonic() < deadline:
            if r.upstream.in_flight + r.upstream.completed - completed_before >= IN_FLIGHT_TURNS:
                break
            await asyncio.sleep(0.01)
        arrived = r.upstream.in_flight + r.upstream.completed - completed_before
        require(arrived >= IN_FLIGHT_TURNS, f"only {arrived} turns reached the upstream")
        ended = sum(task.done() for task in tasks)
        await _erase(http, r.b, user)
    finally:
        turns = await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT_S + 5)
    await _settle(r.upstream)
    await asyncio.sleep(0.3)  # a write after the last answer (none should come)
    note(f"at the erase {arrived} turns had reached the upstream, {ended} had ended")
    again = await stored_user(r.dsn, user)
    orphans = await fetchval(
        r.dsn, "SELECT count(*) FROM profile_version WHERE end_user_id = $1", before.id
    )
    found = []
    if again is not None:
        ok = sum(t.acknowledged for t in turns)
        found.append(
            f"the user exists again (row {again.id}, {len(again.versions)} versions) after "
            f"{ok} of {IN_FLIGHT_TURNS} turns answered 200; at the erase {arrived} had reached "
            f"the upstream and {ended} had ended"
        )
    if orphans:
        found.append(f"{orphans} versions of the erased row {before.id}")
    return "; ".join(found) or None


# --- 4. auth-elsewhere --------------------------------------------------------------------------

NO_ADMIN_KEY = ReplicaConfig(env={"RLPA_ADMIN_API_KEY": None}, fresh_database=True)


async def auth_elsewhere(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    if await fetchval(r.dsn, "SELECT count(*) FROM api_key"):
        # The last trial created one: start over from a database that never had a key.
        await execute(r.dsn, "DELETE FROM api_key")
        await asyncio.to_thread(r.restart_all)
    for base in (r.a, r.b):
        open_ = await http.get(f"{base}/admin/keys")
        require(open_.status_code == 200, f"auth is not off at {base}: {open_.status_code}")
    created = await http.post(
        f"{r.a}/admin/keys", json={"name": f"first key {index}", "scopes": ["admin", "chat"]}
    )
    require(created.status_code == 201, f"POST /admin/keys: {created.status_code}")
    found = []
    for path in ("/admin/keys", "/admin/users"):
        answer = await http.get(f"{r.b}{path}")
        note(f"B answered GET {path} without a key: {answer.status_code}")
        if answer.status_code == 200:
            found.append(f"B answered GET {path} without a key: 200")
    return "; ".join(found) or None


# --- 5. write-behind-order ----------------------------------------------------------------------

WRITE_BEHIND = ReplicaConfig(env={"RLPA_PROFILE_WRITE_BEHIND": "true"})
WRITE_BEHIND_WAIT_S = 3.0


async def write_behind_order(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("behind")
    fact = f"{user} plays the cello"
    r.upstream.script.respond = forgetting
    said = await chat(http, r.a, user, fact, return_profile=False, request_id=f"{user}-said")
    require(said.acknowledged, f"turn N: {said}")
    forgot = await chat(
        http, r.b, user, f"forget: {fact}", return_profile=False, request_id=f"{user}-forgot"
    )
    require(forgot.acknowledged, f"turn N+1: {forgot}")
    # Both replies went out before their writes committed: wait for N's (bounded).
    stored = None
    deadline = time.monotonic() + WRITE_BEHIND_WAIT_S
    while time.monotonic() < deadline:
        stored = await stored_user(r.dsn, user)
        if stored and any(v.request_id == said.request_id for v in stored.versions):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # N+1's write, if it comes after N's
    stored = await stored_user(r.dsn, user)
    versions = stored.versions if stored else []
    said_at = [v.version for v in versions if v.request_id == said.request_id]
    forgot_at = [v.version for v in versions if v.request_id == forgot.request_id]
    final = stored.current if stored else []
    note(f"N stored as {said_at}, N+1 as {forgot_at}, final {final}")
    found = []
    if not said_at:
        found.append(f"turn N's version was never stored (within {WRITE_BEHIND_WAIT_S} s)")
    if said_at and forgot_at and forgot_at[0] < said_at[0]:
        found.append(f"N+1 committed as version {forgot_at[0]}, before N's {said_at[0]}")
    if fact in final:
        where = f"N at {said_at}, N+1 at {forgot_at or 'no version'}"
        found.append(f"the final profile still holds the fact ({where})")
    return "; ".join(found) or None


# --- 6. disconnect-in-block ---------------------------------------------------------------------

BLOCK_STALL_S = 2.0
DISCONNECT_AFTER_S = (0.2, 0.6, 1.0, 0.4, 0.8)  # cycled over the trials
UPSTREAM_SEES_WITHIN_S = 1.0


async def disconnect_in_block(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("leave")
    message = f"{user} leaves mid-block"
    stream = index % 2 == 0
    r.upstream.script.respond = remembering
    r.upstream.script.stall_at, r.upstream.script.stall_s = 1, BLOCK_STALL_S
    before = r.upstream.disconnects
    delay = DISCONNECT_AFTER_S[index % len(DISCONNECT_AFTER_S)]
    request_id = f"{user}-left"
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as own:
        task = asyncio.create_task(
            chat(own, r.a, user, message, stream=stream, request_id=request_id)
        )
        # Wait for the turn to reach the upstream (bounded: a loaded machine is slow to get
        # there), then leave `delay` into its stalled profile block.
        for _ in range(300):
            if r.upstream.in_flight or task.done():
                break
            await asyncio.sleep(0.01)
        require(r.upstream.in_flight == 1, "the turn was not at the upstream")
        await asyncio.sleep(delay)
        if task.done():
            raise NotRun(f"the turn ended before the disconnect: {task.result()}")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    left_at = time.monotonic()
    seen = None
    while time.monotonic() < left_at + UPSTREAM_SEES_WITHIN_S + 2:
        if r.upstream.disconnects > before:
            seen = time.monotonic() - left_at
            break
        await asyncio.sleep(0.01)
    await _settle(r.upstream, BLOCK_STALL_S + 2)
    await asyncio.sleep(0.5)  # a write the turn might still make
    stored = await stored_user(r.dsn, user)
    kind = "stream" if stream else "non-stream"
    saw = "never" if seen is None else f"after {seen:.2f}s"
    note(f"{kind}, left after {delay}s, the upstream saw it {saw}")
    found = []
    if stored is not None and stored.versions:
        mine = [v.version for v in stored.versions if v.request_id == request_id]
        found.append(f"{kind} left after {delay}s: versions {mine or 'of the user'} stored")
    if seen is None or seen > UPSTREAM_SEES_WITHIN_S:
        when = "never (within 3 s)" if seen is None else f"after {seen:.2f}s"
        found.append(f"{kind} left after {delay}s: the upstream saw it {when}")
    return "; ".join(found) or None


# --- 7. outage ----------------------------------------------------------------------------------

NOTHING_STORED = re.compile(r"nothing was (remembered|stored|saved)", re.IGNORECASE)


async def outage(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    found = []
    # (a) PostgreSQL stopped; the turn's block only restates a trait stored and cached.
    user = fresh_user("stopped")
    await _put_profile(http, r.a, user, [f"{user} speaks Finnish"])
    r.upstream.script.respond = restating
    warm = await chat(http, r.a, user, f"{user} warms the cache")
    require(warm.acknowledged, f"(a) the warm-up turn: {warm}")
    await asyncio.to_thread(r.pg.stop)
    try:
        during = await chat(http, r.a, user, f"{user} while PostgreSQL is stopped")
    finally:
        await asyncio.to_thread(r.pg.start)
    if during.status != 200:
        found.append(f"(a) a restating turn with PostgreSQL stopped: {during.status}")

    # (b) PostgreSQL frozen while the turn's write runs; thawed after the 503; one retry.
    user = fresh_user("frozen")
    await _put_profile(http, r.a, user, [f"{user} keeps bees"])
    r.upstream.script.respond = remembering
    warm = await _until_ok(
        lambda: chat(http, r.a, user, f"{user} warms the pool"), lambda t: t.acknowledged
    )
    require(warm.acknowledged, f"(b) the warm-up turn: {warm}")
    fact = f"{user} collects stamps"
    request_id = f"{user}-frozen"
    # At once: the turn reads the cache and the key cache, and its write takes the connection
    # the warm-up just used (trusted without a ping), so the statement itself meets the freeze.
    await asyncio.to_thread(r.pg.freeze)
    try:
        frozen = await chat(http, r.a, user, fact, request_id=request_id)
    finally:
        await asyncio.to_thread(r.pg.thaw)
    await asyncio.sleep(1.0)  # what the frozen backend still had to do, it does now
    after_thaw = await stored_user(r.dsn, user)
    committed = [
        v.version for v in (after_thaw.versions if after_thaw else []) if v.request_id == request_id
    ]
    if frozen.status == 503 and NOTHING_STORED.search(error_message(frozen)) and committed:
        found.append(
            f"(b) the 503 said {error_message(frozen)!r} but version {committed} was committed"
        )
    retry = await _until_ok(
        lambda: chat(http, r.a, user, fact, request_id=request_id),
        lambda t: t.acknowledged,
        tries=5,
    )
    stored = await stored_user(r.dsn, user)
    versions = stored.versions if stored else []
    with_id = [v.version for v in versions if v.request_id == request_id]
    # The versions that added the fact (it was not in the version before).
    added = [
        v.version
        for i, v in enumerate(versions)
        if fact in v.traits and (i == 0 or fact not in versions[i - 1].traits)
    ]
    note(
        f"(a) {during.status}; (b) the frozen turn {frozen.status} "
        f"{error_message(frozen)[:80]!r}, committed after the thaw {committed}, the retry "
        f"{retry.status}, versions with the request id {with_id}"
    )
    if len(with_id) > 1 or len(added) > 1:
        found.append(
            f"(b) the retry ({retry.status}) stored the fact again: versions {with_id} carry "
            f"the request id, the fact was added in {added}"
        )
    return "; ".join(found) or None


# --- 8. ready -----------------------------------------------------------------------------------


async def ready(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    await asyncio.to_thread(r.redis.stop)
    try:
        answer = await http.get(f"{r.a}/ready", timeout=5)
    finally:
        await asyncio.to_thread(r.redis.start)
    note(f"/ready {answer.status_code} {answer.text[:160]}")
    if answer.status_code == 200:
        return None
    return f"/ready with Redis stopped: {answer.status_code} {answer.text[:200]}"


# --- 9. audit-hash ------------------------------------------------------------------------------


def unkeyed_hash(user: str) -> str:
    return "blake2b:" + hashlib.blake2b(user.encode(), digest_size=16).hexdigest()


async def audit_hash(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    user = fresh_user("audit")
    await _put_profile(http, r.a, user, [f"{user} works nights"])
    await _erase(http, r.a, user)
    listed = await http.get(f"{r.b}/admin/audit", params={"limit": 100}, headers=ADMIN)
    require(listed.status_code == 200, f"GET /admin/audit: {listed.status_code}")
    events = listed.json()["data"]
    erasures = [e["target"] for e in events if e["action"] == "user.erase"]
    require(bool(erasures), "no user.erase event in the audit log")
    note(f"the newest erasure's target: {erasures[0]}")
    found = []
    for event in events:
        if event["target"] == unkeyed_hash(user):
            found.append(f"{event['action']} targets {event['target']}, blake2b(user id)")
        elif user in event["target"]:
            found.append(f"{event['action']} names the erased user: {event['target']}")
    return "; ".join(found) or None


# --- 10. auth-limiter ---------------------------------------------------------------------------

WRONG_KEYS = 31
_addresses = itertools.count(2)


def next_loopback_address() -> str:
    """A loopback source address of its own per trial (127.0.0.0/8 is all loopback): the
    failure count is per client address, so no trial inherits another's."""
    n = next(_addresses)
    return f"127.0.{n // 250}.{n % 250 + 2}"


async def auth_limiter(r: Replicas, http: httpx.AsyncClient, index: int) -> str | None:
    created = await http.post(
        f"{r.b}/admin/keys", json={"name": f"limiter {index}", "scopes": ["chat"]}, headers=ADMIN
    )
    require(created.status_code == 201, f"POST /admin/keys: {created.status_code}")
    key = created.json()["key"]
    address = next_loopback_address()
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=REQUEST_TIMEOUT_S) as client:
        statuses = []
        for _ in range(WRONG_KEYS):
            wrong = {"Authorization": f"Bearer rlpa-wrong-{uuid.uuid4().hex}"}
            statuses.append((await client.get(f"{r.a}/v1/models", headers=wrong)).status_code)
        require(401 in statuses, f"wrong keys were not refused: {sorted(set(statuses))}")
        note(f"wrong keys answered {sorted(set(statuses))} from {address}")
        valid = await client.get(f"{r.a}/v1/models", headers={"Authorization": f"Bearer {key}"})
        note(f"the valid key then: {valid.status_code}")
    if valid.status_code == 429:
        refused = statuses.count(429)
        return f"the new valid key got 429 after {WRONG_KEYS} wrong ones ({refused} of them 429)"
    return None


# --- the cases ----------------------------------------------------------------------------------

Trial = Callable[[Replicas, httpx.AsyncClient, int], Awaitable[str | None]]


@dataclass(frozen=True)
class Case:
    number: int
    name: str
    trials: int  # the bench's default
    counted: str  # what a defect is
    trial: Trial
    config: ReplicaConfig = field(default_factory=ReplicaConfig)


CASES = {
    case.name: case
    for case in (
        Case(
            1,
            "redis-snapshot",
            8,
            "an erased user's profile is back after Redis restarts from a snapshot",
            redis_snapshot,
        ),
        Case(
            2,
            "opt-out",
            6,
            "a turn started after the opt-out answered still sees the stored profile",
            opt_out,
        ),
        Case(
            3,
            "erase-in-flight",
            15,
            "the user (or a version) exists after an erase during 30 turns in flight",
            erase_in_flight,
        ),
        Case(
            4,
            "auth-elsewhere",
            3,
            "the other replica stays open (200 without a key) once a first key exists",
            auth_elsewhere,
            NO_ADMIN_KEY,
        ),
        Case(
            5,
            "write-behind-order",
            100,
            "write-behind: N+1 (forget) committed before N, or the fact survives",
            write_behind_order,
            WRITE_BEHIND,
        ),
        Case(
            6,
            "disconnect-in-block",
            6,
            "a version stored for a turn the client left, or the upstream not told in 1 s",
            disconnect_in_block,
        ),
        Case(
            7,
            "outage",
            4,
            "(a) a no-change turn fails with PostgreSQL down; (b) a 503 that lied, or a "
            "retry stored twice",
            outage,
        ),
        Case(8, "ready", 4, "/ready is not 200 while Redis is down", ready),
        Case(
            9,
            "audit-hash",
            4,
            "the erasure's audit target is blake2b(user id), which anyone can confirm",
            audit_hash,
        ),
        Case(
            10,
            "auth-limiter",
            8,
            "a valid, uncached key gets 429 after 31 wrong keys from its address",
            auth_limiter,
        ),
    )
}


@dataclass
class CaseResult:
    case: Case
    defects: list[tuple[int, str]] = field(default_factory=list)
    not_run: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # the trial itself failed
    trials: int = 0

    @property
    def run(self) -> int:
        return self.trials - len(self.not_run) - len(self.errors)

    def report(self) -> str:
        lines = [f"case {self.case.number} {self.case.name}: {self.case.counted}"]
        for kind, items in (("DEFECT", self.defects), ("not run", self.not_run)):
            lines += [f"  trial {i} {kind}: {what}" for i, what in items]
        lines += [f"  trial {i} ERROR: {what}" for i, what in self.errors]
        return "\n".join(lines)


async def run_trials(
    case: Case, replicas: Replicas, trials: int, *, verbose: bool = False
) -> CaseResult:
    """`trials` trials of `case`, one after another, each from a clean upstream script and with
    whatever the last one stopped, froze or killed running again."""
    result = CaseResult(case, trials=trials)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        for index in range(trials):
            await asyncio.to_thread(replicas.heal)
            await asyncio.to_thread(replicas.upstream.reset)
            _notes.clear()
            try:
                found = await asyncio.wait_for(case.trial(replicas, http, index), 120)
            except NotRun as exc:
                result.not_run.append((index, str(exc)))
            except Exception as exc:
                tail = traceback.format_exc(limit=-3) if verbose else ""
                result.errors.append((index, f"{exc!r} {tail}".strip()))
            else:
                if found is not None:
                    result.defects.append((index, found))
            if verbose:
                outcome = "defect" if result.defects and result.defects[-1][0] == index else "-"
                seen = f" ({'; '.join(_notes)})" if _notes else ""
                print(f"  {case.name} trial {index}: {outcome}{seen}", file=sys.stderr)
    await asyncio.to_thread(replicas.heal)
    return result


# --- the bench ----------------------------------------------------------------------------------


def _pick(spec: str) -> list[Case]:
    by_number = {str(case.number): case for case in CASES.values()}
    picked = []
    for word in (w.strip() for w in spec.split(",") if w.strip()):
        case = by_number.get(word) or CASES.get(word)
        if case is None:
            raise SystemExit(f"unknown case {word!r}: pick from {', '.join(CASES)} or 1-10")
        picked.append(case)
    return picked


def _server_package(source: Path) -> str:
    """Where the replicas' `server` package comes from, as they will import it."""
    done = subprocess.run(
        [sys.executable, "-c", "import server; print(server.__file__)"],
        cwd=source,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def table(results: list[CaseResult]) -> str:
    rows = [["case", "trials", "defects", "counted"]]
    for result in results:
        defects = f"{len(result.defects)} of {result.run}"
        if result.not_run:
            defects += f", {len(result.not_run)} not run"
        if result.errors:
            defects += f", {len(result.errors)} errors"
        name = f"{result.case.number}. {result.case.name}"
        rows.append([name, str(result.trials), defects, result.case.counted])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows.insert(1, ["-" * width for width in widths])
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trials", type=int, help="trials per case (default: each case's own, 3 to 30)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="the checkout whose `server` the replicas run (default: this one)",
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated names or numbers (default: all)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the replicas' logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each trial")
    args = parser.parse_args()
    cases = _pick(args.cases)
    source = args.source.resolve()
    print(f"replicas run {_server_package(source)}", file=sys.stderr)

    workdir = Path(tempfile.mkdtemp(prefix="rlpa-replica-faults-"))
    upstream = ScriptedUpstream()
    pg = ThrowawayPostgres()
    results: list[CaseResult] = []
    began = time.monotonic()
    try:
        upstream.start()
        pg.initdb()
        pg.start()
        pg.create_database()
        migrate_database(pg.url, source)
        for case in cases:
            case_dir = workdir / case.name
            case_dir.mkdir()
            with (
                started(PersistentRedis()) as redis_server,
                two_replicas_running(
                    pg, redis_server, upstream, case_dir, case.config, source
                ) as replicas,
            ):
                trials = args.trials or case.trials
                result = asyncio.run(run_trials(case, replicas, trials, verbose=args.verbose))
            results.append(result)
            print(result.report(), file=sys.stderr)
    finally:
        upstream.stop()
        pg.destroy()
        if args.keep_logs:
            print(f"logs: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nsource: {source} ({time.monotonic() - began:.0f} s)\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
