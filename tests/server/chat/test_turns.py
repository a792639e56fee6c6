"""The turn logic over a fake ChatBackend: what the backend is asked, what the client gets, what
is stored. In-process (httpx over ASGI) on a fresh SQLite file: fast, no model, no sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from server import migrate, rlpa
from server.app import create_app
from server.backends.base import Finish, SamplingParams, StreamEvent, TextDelta
from server.deps import AppState
from server.errors import UpstreamError
from server.profiles.models import EndUser, ProfileVersion
from server.settings import Settings
from tests.fixtures.app import auth, running

MODEL = "fake-model"


@dataclass
class Call:
    messages: list[dict[str, str]]
    params: SamplingParams


@dataclass
class FakeBackend:
    """A ChatBackend that answers with `deltas` (split as given) and records every call; with
    `fail_after`, raises UpstreamError after that many deltas."""

    deltas: list[str] = field(default_factory=list)
    fail_after: int | None = None
    calls: list[Call] = field(default_factory=list)

    def answer(self, block: list[str], reply: str) -> None:
        output = rlpa.render_output(block, reply)
        cut = output.index("<response>")
        self.deltas = [output[:cut], output[cut:]]

    async def stream(
        self, model: str, messages: list[dict[str, str]], params: SamplingParams
    ) -> AsyncIterator[StreamEvent]:
        self.calls.append(Call(messages, params))
        for index, text in enumerate(self.deltas):
            if index == self.fail_after:
                raise UpstreamError("The model upstream dropped the stream.")
            yield TextDelta(text)
        yield Finish("stop", prompt_tokens=11, completion_tokens=len(self.deltas))

    async def start(self) -> None:
        pass

    async def list_models(self) -> list[str]:
        return [MODEL]

    async def health(self) -> bool:
        return True

    def supported_extras(self) -> frozenset[str]:
        return frozenset({"top_k"})

    async def aclose(self) -> None:
        pass


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def app(
    make_settings: Callable[..., Settings], tmp_path: Path, backend: FakeBackend
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    application = create_app(make_settings(db="sqlite", redis=False, database_url=url), backend)
    async with running(application) as client:
        client.headers.update(auth())
        yield application, client


def _state(app: FastAPI) -> AppState:
    state: AppState = app.state.rlpa
    return state


async def _rows(app: FastAPI) -> tuple[int, int]:
    """(end_user rows, profile_version rows) in the database."""
    async with _state(app).sessionmaker() as session:
        users = await session.scalar(select(func.count()).select_from(EndUser))
        versions = await session.scalar(select(func.count()).select_from(ProfileVersion))
    return int(users or 0), int(versions or 0)


async def _turn(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    return await client.post("/v1/chat/completions", json=payload)


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line[len("data: ") :] for line in response.text.splitlines() if line.strip()]
    assert lines[-1] == "[DONE]", response.text
    return [json.loads(line) for line in lines[:-1]]


App = tuple[FastAPI, httpx.AsyncClient]


async def test_the_block_is_hidden_and_its_change_stored_and_shown_next_turn(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    backend.answer(["drinks green tea"], "Hello!")
    first = await _turn(client, user="ann", rlpa={"return_profile": True})
    assert first.status_code == 200, first.text
    assert first.json()["choices"][0]["message"]["content"] == "Hello!"
    assert first.json()["rlpa"] == {"profile": ["drinks green tea"], "version": 1, "changed": True}
    assert first.headers["X-RLPA-Memory-Changed"] == "true"
    stored = await _state(application).profiles.get_profile(
        _state(application).auth.anonymous().tenant_id, "ann"
    )
    assert (stored.version, stored.traits) == (1, ["drinks green tea"])

    backend.answer([], "Again!")
    second = await _turn(client, user="ann", rlpa={"return_profile": True})
    assert second.json()["rlpa"] == {
        "profile": ["drinks green tea"],
        "version": 1,
        "changed": False,
    }
    assert second.headers["X-RLPA-Memory-Changed"] == "false"
    system = backend.calls[-1].messages[0]
    assert system["role"] == "system" and "- drinks green tea" in system["content"]
    assert backend.calls[-1].params.rlpa_format


async def test_a_streamed_turn_carries_the_profile_on_its_last_chunk(
    app: App, backend: FakeBackend
) -> None:
    _, client = app
    backend.answer(["lives in Lyon"], "Bonjour")
    response = await _turn(
        client,
        user="bob",
        stream=True,
        stream_options={"include_usage": True},
        rlpa={"return_profile": True},
    )
    chunks = _events(response)
    text = "".join(c["delta"].get("content") or "" for ch in chunks for c in ch["choices"])
    assert text == "Bonjour"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 11
    assert chunks[-1]["rlpa"] == {"profile": ["lives in Lyon"], "version": 1, "changed": True}
    assert "X-RLPA-Memory-Changed" not in response.headers  # sent before the block was written
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"


async def test_no_user_and_mode_off_store_nothing(app: App, backend: FakeBackend) -> None:
    application, client = app
    backend.answer(["has a cat"], "Nice.")
    anonymous = await _turn(client, rlpa={"return_profile": True})
    assert anonymous.status_code == 200
    # Not stored anywhere, but a temporary chat still hands back what the model inferred.
    assert anonymous.json()["rlpa"] == {"profile": ["has a cat"], "version": 0, "changed": False}
    off = await _turn(client, user="cy", rlpa={"mode": "off", "return_profile": True})
    assert off.json()["rlpa"] == {"profile": ["has a cat"], "version": 0, "changed": False}
    assert await _rows(application) == (0, 0)


async def test_an_opted_out_user_gets_plain_chat_and_nothing_is_kept(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    tenant = _state(application).auth.anonymous().tenant_id
    await _state(application).profiles.set_personalization(tenant, "dee", False)
    backend.deltas = ["Just a reply."]
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    response = await _turn(client, user="dee", messages=messages)
    assert response.json()["choices"][0]["message"]["content"] == "Just a reply."
    call = backend.calls[-1]
    assert not call.params.rlpa_format
    assert call.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert await _rows(application) == (1, 0)


async def test_sampling_parameters_reach_the_backend_and_choices_get_their_own_seed(
    app: App, backend: FakeBackend
) -> None:
    _, client = app
    backend.answer([], "ok")
    response = await _turn(
        client,
        n=2,
        max_completion_tokens=7,
        temperature=0.4,
        top_p=0.9,
        stop="END",
        seed=10,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        top_k=3,
        nobody_knows_this=1,
    )
    assert response.status_code == 200, response.text
    first, second = (call.params for call in backend.calls)
    # max_tokens and stop are the reply's: the backend is asked for the block's bound besides,
    # and the gateway applies the stop strings to the reply itself.
    assert (first.max_tokens, first.temperature, first.top_p) == (256 + 7, 0.4, 0.9)
    assert (first.stop, first.presence_penalty, first.frequency_penalty) == ([], 0.5, -0.5)
    assert first.extra == {"top_k": 3}  # an unknown field is dropped, a supported extra kept
    assert (first.seed, second.seed) == (10, 11)


@pytest.mark.parametrize("field", ["functions", "logprobs", "logit_bias"])
async def test_fields_that_cannot_be_relayed_are_refused(
    app: App, backend: FakeBackend, field: str
) -> None:
    _, client = app
    value = {
        "functions": [{"name": "f"}],
        "logprobs": True,
        "logit_bias": {"1": 2.0},  # the fake backend does not take it
    }[field]
    response = await _turn(client, **{field: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert backend.calls == []


async def test_a_backend_failure_stores_only_a_block_that_was_complete(
    app: App, backend: FakeBackend
) -> None:
    application, client = app
    backend.answer(["plays chess"], "Check")
    backend.fail_after = 0  # before any output: a real status, nothing stored
    failed = await _turn(client, user="eve", stream=True)
    assert failed.status_code == 502, failed.text
    assert await _rows(application) == (1, 0)

    backend.deltas = [*backend.deltas, " and mate"]
    backend.fail_after = 2  # after the block and some reply: an error event, the block kept
    events = _events(await _turn(client, user="eve", stream=True))
    assert events[-1]["error"]["type"] == "upstream_error"
    assert not any(c.get("finish_reason") for ch in events[:-1] for c in ch["choices"])
    assert await _rows(application) == (1, 1)


async def test_an_unknown_model_is_a_404(app: App, backend: FakeBackend) -> None:
    _, client = app
    response = await _turn(client, model="no-such-model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert backend.calls == []


async def test_tools_reach_the_backend_as_prompt_and_grammar_not_as_fields(
    app: App, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    _, client = app
    backend.answer([], "ok")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    with caplog.at_level(logging.INFO, logger="server.openai.fields"):
        response = await _turn(
            client, tools=tools, parallel_tool_calls=False, top_k=2, nobody_knows_this=1
        )
    assert response.status_code == 200, response.text
    params = backend.calls[0].params
    assert params.extra == {"top_k": 2}
    assert params.grammar is not None and '"\\"lookup\\""' in params.grammar
    assert "- lookup()" in backend.calls[0].messages[0]["content"]
    assert "ignoring unknown request field 'nobody_knows_this'" in caplog.text
