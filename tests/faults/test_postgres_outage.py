"""PostgreSQL stopped or frozen under load: fast 503s, no acknowledged turn lost, recovery
without a gateway restart."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from server.app import create_app
from tests.faults.turns import (
    FAST_S,
    READY_S,
    REQUEST_TIMEOUT_S,
    SLACK_S,
    Outcome,
    chat,
    error_shape_violations,
    gateway_settings,
    lost_acknowledged_turns,
    started_between,
    stream_contract_violations,
    under_load,
)
from tests.fixtures.live import serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

RECOVERY_S = 15.0


def _refusals_not_fast_or_not_503(outcomes: list[Outcome]) -> list[str]:
    return [
        str(o) for o in outcomes if not o.refused_as_unavailable or o.elapsed > FAST_S + SLACK_S
    ]


def _wire_violations(outcomes: list[Outcome]) -> list[str]:
    found = []
    for outcome in outcomes:
        if not outcome.acknowledged and not outcome.refused_as_unavailable:
            found.append(f"{outcome}: neither served nor refused as unavailable")
        found += error_shape_violations(outcome) + stream_contract_violations(outcome)
    return found


async def _recovered(gateway: str, tag: str) -> list[Outcome]:
    """Once one turn succeeds again (bounded wait), a round of plain and streamed turns."""
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        deadline = time.monotonic() + RECOVERY_S
        while True:
            probe = await chat(http, gateway, f"{tag}-probe", f"probe {time.monotonic_ns()}")
            assert probe.acknowledged or probe.refused_as_unavailable, str(probe)
            if probe.acknowledged or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert probe.acknowledged, f"no recovery within {RECOVERY_S} s: {probe}"
        return [
            await chat(http, gateway, f"{tag}-after-{i}", "fact after recovery", stream=i % 2 == 1)
            for i in range(4)
        ]


async def _streamed(gateway: str, user: str, fact: str) -> Outcome:
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        return await chat(http, gateway, user, fact, stream=True)


def _failed_mid_stream(outcome: Outcome) -> list[str]:
    """A user whose profile is cached gets as far as streaming the reply, and then its write
    fails: the stream must say so (an error event, no finish chunk), and fast."""
    if outcome.status == 200 and outcome.error is not None and outcome.elapsed <= FAST_S + SLACK_S:
        return stream_contract_violations(outcome)
    return [f"{outcome}: not a fast error event in a started stream"]


async def test_postgres_stopped_under_load_gives_fast_503s_and_loses_no_acknowledged_turn(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    marks: dict[str, float] = {}
    cached: list[Outcome] = []  # turns of a user whose profile is in the cache

    async def outage() -> None:
        cached.append(await _streamed(gateway, "pg-stop-cached", "fact before the outage"))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(throwaway_pg.stop)
        marks["stopped"] = time.monotonic()
        try:
            cached.append(await _streamed(gateway, "pg-stop-cached", "fact while down"))
            await asyncio.sleep(4.0)
        finally:
            marks["starting"] = time.monotonic()
            await asyncio.to_thread(throwaway_pg.start)
        await asyncio.sleep(2.0)

    with serve(create_app(settings)) as gateway:
        outcomes = await under_load(gateway, "pg-stop", outage)
        after = await _recovered(gateway, "pg-stop")

    violations = _wire_violations(outcomes)
    assert not violations, "\n".join(violations)
    assert cached[0].acknowledged, str(cached[0])
    violations = _failed_mid_stream(cached[1])
    assert not violations, "\n".join(violations)
    # Everything that started while PostgreSQL was down (and had FAST_S to answer before it came
    # back) was refused, fast.
    down = started_between(outcomes, marks["stopped"], marks["starting"] - FAST_S - SLACK_S)
    assert down, "no turn ran while PostgreSQL was down"
    slow_or_served = _refusals_not_fast_or_not_503(down)
    assert not slow_or_served, "\n".join(slow_or_served)
    assert any(o.acknowledged for o in outcomes if o.started > marks["starting"])
    assert all(o.acknowledged for o in after), "\n".join(map(str, after))
    lost = await lost_acknowledged_turns(throwaway_pg.dsn, outcomes + cached + after)
    assert not lost, "\n".join(lost)


Probe = tuple[float, float, httpx.Response]  # started, ended, response


async def _probe_ready(gateway: str, until: asyncio.Event) -> list[Probe]:
    probes = []
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
        while not until.is_set():
            started = time.monotonic()
            response = await http.get(f"{gateway}/ready")
            probes.append((started, time.monotonic(), response))
            await asyncio.sleep(0.3)
    return probes


async def test_postgres_frozen_gives_fast_503s_and_ready_names_the_database(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    marks: dict[str, float] = {}
    probes: list[Probe] = []
    cached: list[Outcome] = []  # turns of a user whose profile is in the cache

    async def freeze() -> None:
        cached.append(await _streamed(gateway, "pg-freeze-cached", "fact before the freeze"))
        await asyncio.sleep(1.0)  # warm: pooled connections and cached profiles exist
        thawed = asyncio.Event()
        throwaway_pg.freeze()
        marks["frozen"] = time.monotonic()
        prober = asyncio.create_task(_probe_ready(gateway, thawed))
        try:
            cached.append(await _streamed(gateway, "pg-freeze-cached", "fact while frozen"))
            await asyncio.sleep(8.0 - (time.monotonic() - marks["frozen"]))
        finally:
            throwaway_pg.thaw()
            marks["thawed"] = time.monotonic()
            thawed.set()
            probes.extend(await asyncio.wait_for(prober, REQUEST_TIMEOUT_S + 5))
        await asyncio.sleep(1.0)

    with serve(create_app(settings)) as gateway:
        outcomes = await under_load(gateway, "pg-freeze", freeze, clients=2)
        after = await _recovered(gateway, "pg-freeze")
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            ready = await http.get(f"{gateway}/ready")

    violations = _wire_violations(outcomes)
    assert not violations, "\n".join(violations)
    assert cached[0].acknowledged, str(cached[0])
    violations = _failed_mid_stream(cached[1])
    assert not violations, "\n".join(violations)
    frozen = started_between(outcomes, marks["frozen"], marks["thawed"] - FAST_S - SLACK_S)
    assert frozen, "no turn ran while PostgreSQL was frozen"
    slow_or_served = _refusals_not_fast_or_not_503(frozen)
    assert not slow_or_served, "\n".join(slow_or_served)

    assert probes, "/ready was not probed while PostgreSQL was frozen"
    for started, ended, response in probes:
        assert ended - started <= READY_S + SLACK_S, f"/ready took {ended - started:.2f} s"
        if ended < marks["thawed"]:  # answered while frozen
            assert response.status_code == 503, response.text
            assert "database" in response.json()["reasons"], response.text

    assert all(o.acknowledged for o in after), "\n".join(map(str, after))
    assert ready.status_code == 200, ready.text
    lost = await lost_acknowledged_turns(throwaway_pg.dsn, outcomes + cached + after)
    assert not lost, "\n".join(lost)


async def test_postgres_refusing_connections_while_it_starts_gives_fast_503s(
    throwaway_pg: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, upstream_a: ScriptedUpstream
) -> None:
    """The window between a restart and accepting sessions, held open: PostgreSQL answers, but
    only with "not accepting connections" (57P03), an error of its own rather than a timeout."""
    upstream_a.script.respond = remembering
    settings = gateway_settings(upstream_a.url, throwaway_pg.url, throwaway_redis.url)
    with serve(create_app(settings)) as gateway:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            known = "pg-starting-known"  # cached: its turns fail only when they write
            assert (await chat(http, gateway, known, "fact before")).acknowledged
            with throwaway_pg.refusing_connections():
                outcomes = [
                    await chat(http, gateway, user, f"fact {i}", stream=i % 2 == 1)
                    for user in (known, "pg-starting-new")
                    for i in range(2)
                ]
                ready = await http.get(f"{gateway}/ready")
        after = await _recovered(gateway, "pg-starting")

    violations = _wire_violations(outcomes) + _refusals_not_fast_or_not_503(outcomes)
    assert not violations, "\n".join(violations)
    assert ready.status_code == 503 and "database" in ready.json()["reasons"], ready.text
    assert all(o.acknowledged for o in after), "\n".join(map(str, after))
    lost = await lost_acknowledged_turns(throwaway_pg.dsn, outcomes + after)
    assert not lost, "\n".join(lost)
