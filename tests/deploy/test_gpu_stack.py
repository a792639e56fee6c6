"""The processes the compose `gpu` stack runs, run here: the `migrate` service's command on a
fresh PostgreSQL database, then the image's command with the `gateway` service's environment on
PostgreSQL + Redis, with llama-cpp-python's OpenAI server (the bare base model) standing in for
vLLM. Only addresses differ from the compose file; everything else is read from it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import redis.asyncio as aioredis

from tests.fixtures.db import ADMIN_KEY, REDIS_URL, create_pg_database, drop_pg_database
from tests.fixtures.deploy import image_command, service_env, service_target, services
from tests.fixtures.live import free_port
from tests.fixtures.upstreams import LlamaServer

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
COMPOSE_ENV = {"RLPA_ADMIN_API_KEY": ADMIN_KEY}


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database nothing has migrated: what `migrate` finds on first start."""
    name, url = await create_pg_database()
    yield url
    await drop_pg_database(name)


@pytest.fixture
async def cache_prefix() -> AsyncIterator[str]:
    prefix = f"rlpa-deploy-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _process_env(settings: dict[str, str]) -> dict[str, str]:
    """The process environment: this one without any RLPA_* of its own, plus `settings`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RLPA_")}
    return inherited | settings


def _command(words: list[str]) -> list[str]:
    """A compose command, run with this virtualenv's `rlpa`."""
    return [str(BIN / words[0]), *words[1:]]


def _gateway_command(service: str) -> list[str]:
    """What a gateway service runs: the command of the image compose builds for it."""
    assert "command" not in services()[service]
    return image_command(service_target(service))


@contextmanager
def _running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[str]:
    """The gateway process; yields its base URL once the compose healthcheck would pass."""
    url = f"http://127.0.0.1:{env['RLPA_PORT']}"
    log = cwd / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(_command(command), env=env, cwd=cwd, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not come up:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _stored_versions(database_url: str, user: str) -> list[int]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT v.version FROM profile_version v JOIN end_user u ON u.id = v.end_user_id "
            "WHERE u.external_id = $1 ORDER BY v.version",
            user,
        )
    finally:
        await conn.close()
    return [row["version"] for row in rows]


async def test_gpu_stack_migrates_serves_and_stores_a_profile_version(
    empty_database: str, cache_prefix: str, llama_server: LlamaServer, tmp_path: Path
) -> None:
    # `migrate`: its command and environment, on the empty database.
    migrate_env = service_env("migrate", COMPOSE_ENV) | {"RLPA_DATABASE_URL": empty_database}
    await asyncio.to_thread(
        subprocess.run,
        _command([str(word) for word in services()["migrate"]["command"]]),
        env=_process_env(migrate_env),
        cwd=tmp_path,  # no .env of the checkout is read
        check=True,
        timeout=120,
    )
    # `gateway`: the image's command with the service's environment; the addresses are ours.
    settings = service_env("gateway", COMPOSE_ENV)
    addresses = {
        "RLPA_HOST": "127.0.0.1",
        "RLPA_PORT": str(free_port()),
        "RLPA_DATABASE_URL": empty_database,
        "RLPA_REDIS_URL": REDIS_URL,
        "RLPA_UPSTREAM_URLS": llama_server.url,
    }
    assert addresses.keys() <= settings.keys()
    settings |= addresses
    settings |= {
        "RLPA_REDIS_KEY_PREFIX": cache_prefix,
        "RLPA_UPSTREAM_API_KEY": llama_server.api_key,
    }
    user = f"deploy-{uuid.uuid4().hex[:8]}"
    lines = ["Hi! I'm a nurse in Seattle.", "I work night shifts.", "I have two cats."]
    with _running(_gateway_command("gateway"), _process_env(settings), tmp_path) as gateway:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120
        ) as client:
            models = [model.id async for model in client.models.list()]
            served = settings["RLPA_SERVED_MODEL_NAME"]
            assert models == [served, f"{served}-nomemory"]  # and its memory-off id
            history: list[Any] = []
            for turn, line in enumerate(lines):
                history.append({"role": "user", "content": line})
                reply = await client.chat.completions.create(
                    model=models[0],
                    messages=history,
                    user=user,
                    max_tokens=96,
                    seed=turn,
                )
                history.append(
                    {"role": "assistant", "content": reply.choices[0].message.content or ""}
                )
                if await _stored_versions(empty_database, user):
                    break
    assert await _stored_versions(empty_database, user), "no turn stored a profile version"
    cache = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert [key async for key in cache.scan_iter(match=f"{cache_prefix}*")]
    finally:
        await cache.aclose()


async def test_cpu_stack_migrates_serves_the_shipped_adapter_and_stores_a_profile_version(
    empty_database: str, cache_prefix: str, tmp_path: Path
) -> None:
    """The compose `cpu` profile's processes: `migrate`, then `gateway-cpu` (the embedded model
    with the adapter the package ships) on PostgreSQL + Redis; the README's first message is
    stored on the first turn."""
    migrate_env = service_env("migrate", COMPOSE_ENV) | {"RLPA_DATABASE_URL": empty_database}
    await asyncio.to_thread(
        subprocess.run,
        _command([str(word) for word in services()["migrate"]["command"]]),
        env=_process_env(migrate_env),
        cwd=tmp_path,
        check=True,
        timeout=120,
    )
    settings = service_env("gateway-cpu", COMPOSE_ENV)
    assert settings["RLPA_BACKEND"] == "llamacpp"
    addresses = {
        "RLPA_HOST": "127.0.0.1",
        "RLPA_PORT": str(free_port()),
        "RLPA_DATABASE_URL": empty_database,
        "RLPA_REDIS_URL": REDIS_URL,
    }
    assert addresses.keys() <= settings.keys()
    settings |= addresses | {"RLPA_REDIS_KEY_PREFIX": cache_prefix}
    user = f"deploy-{uuid.uuid4().hex[:8]}"
    with _running(_gateway_command("gateway-cpu"), _process_env(settings), tmp_path) as gateway:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120
        ) as client:
            models = [model.id async for model in client.models.list()]
            # the shipped adapter, not the bare base; and its memory-off id
            assert models == ["smollm2-135m-rlpa", "smollm2-135m-rlpa-nomemory"]
            await client.chat.completions.create(
                model=models[0],
                messages=[{"role": "user", "content": "Hi! I am a nurse in Seattle."}],
                user=user,
                temperature=0,
            )
    assert await _stored_versions(empty_database, user) == [1]
