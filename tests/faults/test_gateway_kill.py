"""The gateway process itself dies: SIGKILL loses no acknowledged version, SIGTERM lets pending
profile writes finish. A real `rlpa serve` process over throwaway PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.faults.turns import (
    REQUEST_TIMEOUT_S,
    Outcome,
    chat,
    lost_acknowledged_turns,
    stored_versions,
)
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import free_port, rlpa_serve
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis
from tests.fixtures.upstreams import ScriptedUpstream, remembering

pytestmark = pytest.mark.slow

ACKNOWLEDGED_BEFORE_KILL = 60
CLIENTS = 6


@contextmanager
def gateway_process(
    upstream: ScriptedUpstream, pg: ThrowawayPostgres, redis: ThrowawayRedis, log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rlpa serve` in a process of its own; (base URL, process)."""
    port = free_port()
    env = {
        **os.environ,
        "RLPA_BACKEND": "openai",
        "RLPA_UPSTREAM_URLS": upstream.url,
        "RLPA_UPSTREAM_GRAMMAR": "none",
        "RLPA_DATABASE_URL": pg.url,
        "RLPA_REDIS_URL": redis.url,
        "RLPA_REDIS_KEY_PREFIX": f"rlpa-kill-{time.monotonic_ns()}:",
        "RLPA_ADMIN_API_KEY": ADMIN_KEY,
        "RLPA_LOG_LEVEL": "warning",
    }
    with rlpa_serve(env, port, log) as running:
        yield running


async def test_sigkill_loses_no_acknowledged_version(
    throwaway_pg: ThrowawayPostgres,
    throwaway_redis: ThrowawayRedis,
    upstream_a: ScriptedUpstream,
    tmp_path: Path,
) -> None:
    upstream_a.script.respond = remembering
    outcomes: list[Outcome] = []
    killed = asyncio.Event()

    async def client(http: httpx.AsyncClient, gateway: str, index: int) -> None:
        turn = 0
        while not killed.is_set():
            user = f"kill-c{index}-u{turn // 20}"
            outcome = await chat(http, gateway, user, f"fact {turn}", stream=index % 2 == 1)
            outcomes.append(outcome)
            turn += 1

    log = tmp_path / "gateway.log"
    with gateway_process(upstream_a, throwaway_pg, throwaway_redis, log) as (gateway, process):
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            tasks = [asyncio.create_task(client(http, gateway, i)) for i in range(CLIENTS)]
            while sum(o.acknowledged for o in outcomes) < ACKNOWLEDGED_BEFORE_KILL:
                assert not any(task.done() for task in tasks), [t.exception() for t in tasks]
                await asyncio.sleep(0.02)
            # Mid-load: other turns are in flight, some with their write under way.
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            killed.set()
            await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT_S + 5)

    acknowledged = [o for o in outcomes if o.acknowledged]
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert all(o.version for o in acknowledged)
    lost = await lost_acknowledged_turns(throwaway_pg.dsn, outcomes)
    assert not lost, "\n".join(lost)


async def test_sigterm_lets_a_pending_profile_write_finish(
    throwaway_pg: ThrowawayPostgres,
    throwaway_redis: ThrowawayRedis,
    upstream_a: ScriptedUpstream,
    tmp_path: Path,
) -> None:
    """A client leaves once its reply text came, while its profile write waits on a frozen
    PostgreSQL; then the gateway is told to stop. It waits for the write before it exits."""
    upstream_a.script.respond = remembering
    user = f"sigterm-{time.monotonic_ns()}"
    log = tmp_path / "gateway.log"
    with gateway_process(upstream_a, throwaway_pg, throwaway_redis, log) as (gateway, process):
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as http:
            # The user's profile is cached and a database connection was just used: the turn
            # reaches the write without needing PostgreSQL before it.
            assert (await chat(http, gateway, user, "fact before")).acknowledged
            throwaway_pg.freeze()
            try:
                body = {
                    "model": "scripted",
                    "user": user,
                    "stream": True,
                    "messages": [{"role": "user", "content": "fact during shutdown"}],
                }
                headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
                url = f"{gateway}/v1/chat/completions"
                async with http.stream("POST", url, json=body, headers=headers) as response:
                    async for line in response.aiter_lines():
                        if '"ok' in line:  # the reply came: the block was complete before it
                            break
                # The client is gone; its write is pending. Stop the gateway.
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(1.0)
                assert process.poll() is None, "the gateway exited with a write pending"
            finally:
                throwaway_pg.thaw()
            assert process.wait(timeout=20) is not None
    stored = await stored_versions(throwaway_pg.dsn, {user})
    assert stored[user].get(2) == ["fact before", "fact during shutdown"], stored
