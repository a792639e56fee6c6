"""`RLPA_PROFILE_WRITE_BEHIND`: the reply goes out before the profile write commits, except for a
turn that reports its version; the same user's next turn still reads the change; a failed write
is counted, and the app's shutdown waits for writes in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server import metrics, migrate
from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.server.chat.test_turns import MODEL, FakeBackend, _rows, _state

App = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    migrate.upgrade(url)
    return url


def _app(make_settings: Callable[..., Settings], url: str, backend: FakeBackend) -> FastAPI:
    settings = make_settings(db="sqlite", redis=False, database_url=url, profile_write_behind=True)
    return create_app(settings, backend)


@pytest.fixture
async def app(
    make_settings: Callable[..., Settings], database: str, backend: FakeBackend
) -> AsyncIterator[App]:
    application = _app(make_settings, database, backend)
    async with running(application) as client:
        client.headers.update(auth())
        yield application, client


def hold_writes(application: FastAPI) -> asyncio.Event:
    """Profile writes wait until the returned event is set."""
    profiles = _state(application).profiles
    real = profiles.apply_change
    gate = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await real(*args, **kwargs)

    profiles.apply_change = held  # type: ignore[method-assign]
    return gate


async def _turn(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    return await client.post("/v1/chat/completions", json=payload)


async def test_the_reply_does_not_wait_for_the_commit_but_the_users_next_turn_reads_it(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    gate = hold_writes(application)
    backend.answer(["is vegan"], "Try lentil curry.")
    first = await asyncio.wait_for(_turn(client, user="ann"), 5)
    assert first.status_code == 200 and "lentil" in first.text
    assert await _rows(application) == (1, 0)  # answered, the version not yet committed

    backend.answer([], "Sure.")
    second = asyncio.ensure_future(_turn(client, user="ann"))
    other = await asyncio.wait_for(_turn(client, user="bob"), 5)  # another user is not held
    assert other.status_code == 200
    await asyncio.sleep(0.2)
    assert not second.done(), "ann's next turn must wait for her write, to read what it stored"
    gate.set()
    assert (await asyncio.wait_for(second, 5)).status_code == 200
    assert "- is vegan" in backend.calls[-1].messages[0]["content"]
    assert await _rows(application) == (2, 1)


async def test_a_turn_that_reports_its_version_still_waits_for_the_commit(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    gate = hold_writes(application)
    backend.answer(["has a dog"], "Nice!")
    turn = asyncio.ensure_future(_turn(client, user="cy", rlpa={"return_profile": True}))
    await asyncio.sleep(0.2)
    assert not turn.done()
    gate.set()
    response = await asyncio.wait_for(turn, 5)
    assert response.json()["rlpa"] == {"profile": ["has a dog"], "version": 1, "changed": True}
    assert await _rows(application) == (1, 1)


async def test_a_failed_write_is_counted_and_keeps_the_stored_profile(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    state = _state(application)
    tenant = state.auth.anonymous().tenant_id
    backend.answer(["lives in Oslo"], "Hei!")
    assert (await _turn(client, user="dee", rlpa={"return_profile": True})).status_code == 200

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    real = state.profiles.apply_change
    state.profiles.apply_change = broken  # type: ignore[method-assign]
    failures = metrics.PROFILE_WRITE_FAILURES.labels("unknown")._value.get()
    backend.answer(["plays chess"], "Good move.")
    response = await _turn(client, user="dee")
    assert response.status_code == 200  # the reply was out before the write failed
    for _ in range(50):
        if metrics.PROFILE_WRITE_FAILURES.labels("unknown")._value.get() > failures:
            break
        await asyncio.sleep(0.02)
    assert metrics.PROFILE_WRITE_FAILURES.labels("unknown")._value.get() == failures + 1
    state.profiles.apply_change = real  # type: ignore[method-assign]
    stored = await state.profiles.get_profile(tenant, "dee")
    assert stored.traits == ["lives in Oslo"]


async def test_shutdown_waits_for_a_write_in_flight(
    make_settings: Callable[..., Settings], database: str, backend: FakeBackend
) -> None:
    application = _app(make_settings, database, backend)
    async with running(application) as client:
        client.headers.update(auth())
        gate = hold_writes(application)
        backend.answer(["speaks Welsh"], "Da iawn.")
        assert (await _turn(client, user="eve")).status_code == 200
        asyncio.get_running_loop().call_later(0.3, gate.set)
    # The app has shut down: the held write was let through and committed before it did.
    reopened = _app(make_settings, database, backend)
    async with running(reopened):
        tenant = _state(reopened).auth.anonymous().tenant_id
        stored = await _state(reopened).profiles.get_profile(tenant, "eve")
    assert stored.traits == ["speaks Welsh"]


@pytest.mark.parametrize("redis", [False, True], ids=["postgres-alone", "postgres-and-redis"])
async def test_on_postgres_write_behind_needs_redis_to_order_turns_across_replicas(
    make_settings: Callable[..., Settings],
    backend: FakeBackend,
    redis: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Replicas on one PostgreSQL can order a user's turns only through a shared cache: without
    Redis the setting is ignored (every turn waits for its write), and the log says so."""
    settings = make_settings(db="postgres", redis=redis, profile_write_behind=True)
    app = create_app(settings, backend)
    with caplog.at_level("WARNING", logger="server"):
        async with running(app) as client:
            client.headers.update(auth())
            gate = hold_writes(app)
            backend.answer(["sails"], "Ahoy.")
            turn = asyncio.ensure_future(_turn(client, user=f"pg-{redis}-{id(app)}"))
            # While its write is held, a turn is answered only if it writes behind; without
            # write-behind it cannot end, so the shorter wait only bounds the test.
            await asyncio.wait({turn}, timeout=10 if redis else 1)
            answered_first = turn.done()
            gate.set()
            assert (await asyncio.wait_for(turn, 5)).status_code == 200
    assert answered_first is redis
    ignored = "RLPA_PROFILE_WRITE_BEHIND is ignored" in caplog.text
    assert ignored is not redis
