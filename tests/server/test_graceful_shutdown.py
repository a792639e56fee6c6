"""SIGTERM drains a real `rlpa serve` process: it stops accepting at once, lets the stream in
flight finish within RLPA_SHUTDOWN_GRACE_S (its profile version stored), then exits 0; a stream
that outlasts the grace period is cut and the process exits all the same."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import ADMIN_KEY, REDIS_URL
from tests.fixtures.live import free_port, rlpa_serve
from tests.fixtures.upstreams import ScriptedUpstream

pytestmark = pytest.mark.slow

MARGIN_S = 5.0
TRAIT = "drinks green tea"
BLOCK = f"<profile>\n- {TRAIT}\n</profile>\n\n<response>\n"


@contextmanager
def gateway_process(
    upstream: ScriptedUpstream, pg_url: str, redis_prefix: str, grace_s: int, log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`rlpa serve` as an operator runs it, its log (stderr, not a terminal) in `log`."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("RLPA_")}
    env |= {
        "RLPA_BACKEND": "openai",
        "RLPA_UPSTREAM_URLS": upstream.url,
        "RLPA_UPSTREAM_GRAMMAR": "none",
        "RLPA_DATABASE_URL": pg_url,
        "RLPA_REDIS_URL": REDIS_URL,
        "RLPA_REDIS_KEY_PREFIX": redis_prefix,
        "RLPA_ADMIN_API_KEY": ADMIN_KEY,
        "RLPA_SHUTDOWN_GRACE_S": str(grace_s),
    }
    with rlpa_serve(env, port, log) as running:
        yield running


def _chat(user: str) -> dict[str, object]:
    messages = [{"role": "user", "content": "I only drink green tea"}]
    return {"model": "scripted", "user": user, "stream": True, "messages": messages}


async def _refuses_connections(url: str) -> bool:
    """True once a new connection is refused (uvicorn closes its socket within a tick)."""
    deadline = time.monotonic() + 3
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            try:
                await http.get(f"{url}/health")
            except httpx.ConnectError:
                return True
            await asyncio.sleep(0.05)
    return False


async def test_sigterm_lets_the_stream_in_flight_finish_and_exits_0(
    upstream_a: ScriptedUpstream,
    pg_url: str,
    redis_prefix: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    grace_s, user = 10, f"drain-{uuid.uuid4().hex[:8]}"
    words = [f"word{i} " for i in range(8)]
    upstream_a.script.texts = [BLOCK, *words, "\n</response>"]
    upstream_a.script.delay_s = 0.4  # about four seconds of stream
    log = tmp_path / "gateway.log"
    with gateway_process(upstream_a, pg_url, redis_prefix, grace_s, log) as (url, process):
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream(
                "POST", f"{url}/v1/chat/completions", json=_chat(user), headers=auth()
            ) as response,
        ):
            assert response.status_code == 200  # sent once the first words came: mid-stream
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            assert await _refuses_connections(url)
            lines = [line async for line in response.aiter_lines() if line]
        code = await asyncio.to_thread(process.wait, grace_s + MARGIN_S)
        took = time.monotonic() - stopped_at
    assert code == 0
    assert took < grace_s + MARGIN_S
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert not [c for c in chunks if "error" in c]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.split() == [word.strip() for word in words]
    async with running(create_app(make_settings())) as client:
        profile = (await client.get(f"/admin/users/{quote(user)}/profile", headers=auth())).json()
    assert (profile["traits"], profile["version"]) == ([TRAIT], 1)
    # `rlpa serve` logs JSON when its stderr is not a terminal, the drained stream included.
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    chat = [e for e in entries if e.get("route") == "/v1/chat/completions"]
    assert [(e["status"], e["outcome"]) for e in chat] == [(200, "ok")]
    assert TRAIT not in log.read_text()


async def test_a_stream_longer_than_the_grace_period_is_cut_and_the_process_exits(
    upstream_a: ScriptedUpstream, pg_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    grace_s = 1
    upstream_a.script.texts = [BLOCK, *[f"word{i} " for i in range(40)], "\n</response>"]
    upstream_a.script.delay_s = 0.5  # twenty seconds of stream
    log = tmp_path / "gateway.log"
    user = f"cut-{uuid.uuid4().hex[:8]}"
    with gateway_process(upstream_a, pg_url, redis_prefix, grace_s, log) as (url, process):
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream(
                "POST", f"{url}/v1/chat/completions", json=_chat(user), headers=auth()
            ) as response,
        ):
            assert response.status_code == 200
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            code = await asyncio.to_thread(process.wait, grace_s + MARGIN_S)
            took = time.monotonic() - stopped_at
            with pytest.raises(httpx.TransportError):  # the stream ended without [DONE]
                async for _ in response.aiter_lines():
                    pass
    assert code == 0
    assert took < grace_s + MARGIN_S
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    chat = [e for e in entries if e.get("route") == "/v1/chat/completions"]
    assert [(e["status"], e["outcome"]) for e in chat] == [(200, "disconnected")]
    # The cut stream's upstream request was closed too: generation does not go on for no one.
    for _ in range(60):  # it notices within its next delay
        if upstream_a.disconnects:
            break
        await asyncio.sleep(0.05)
    assert (upstream_a.disconnects, upstream_a.completed) == (1, 0)
