"""Open WebUI 0.12.4 end to end, on the real embedded model (in-process): every request it was
captured sending (tests/fixtures/open_webui/requests.jsonl) replayed as sent, headers included,
with RLPA_USER_HEADER=X-OpenWebUI-User-Id; and the memory-off model id its Task Model is set to
(docs/clients.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.llamacpp import LlamaCppBackend
from server.settings import Settings
from tests.fixtures.app import auth
from tests.fixtures.models import embedded_settings
from tests.server.openai.test_identity import OPEN_WEBUI, Gateway, gateway, open_webui_person

pytestmark = pytest.mark.slow

MODEL = DEFAULT_ADAPTED_MODEL_NAME
NOMEMORY = f"{MODEL}-nomemory"
CAPTURED = Path(__file__).parents[2] / "fixtures" / "open_webui" / "requests.jsonl"
USER_ID = "x-openwebui-user-id"
# Headers of the captured transport, not of Open WebUI: the test client sets its own.
_TRANSPORT = {"authorization", "host", "content-length", "accept-encoding", "connection"}


def captured() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTURED.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
async def shipped_context() -> AsyncIterator[LlamaCppBackend]:
    """The embedded model with the context it is served with (RLPA_N_CTX's default): a chat
    carrying Open WebUI's 28 built-in tools is a prompt of some 1,400 tokens, past the 1,024
    the other tests' backend holds."""
    backend = LlamaCppBackend(embedded_settings(n_ctx=Settings.model_fields["n_ctx"].default))
    await backend.start()
    yield backend
    await backend.aclose()


@pytest.fixture
async def owui(
    make_settings: Callable[..., Settings], shipped_context: LlamaCppBackend
) -> AsyncIterator[Gateway]:
    settings = make_settings(default_max_tokens=4, profile_max_tokens=48, user_header=OPEN_WEBUI)
    async with gateway(settings, shipped_context) as pair:
        yield pair


async def _export(http: httpx.AsyncClient, user: str) -> dict[str, Any] | None:
    response = await http.get(f"/admin/users/{quote(user, safe='')}/export")
    assert response.status_code in (200, 404), response.text
    return response.json() if response.status_code == 200 else None


def test_the_capture_is_open_webuis_chats_with_tools_and_both_people() -> None:
    chats = [r for r in captured() if r["path"] == "/v1/chat/completions"]
    assert {r["headers"][USER_ID] for r in chats} == {
        "a6a58c1c-6c9a-4017-b80b-729a46e0938f",
        "856c352f-39d0-4b61-b5c6-5e5311f9f6e2",
    }
    assert {bool(r["body"].get("stream")) for r in chats} == {True, False}
    assert any(r["body"].get("tools") for r in chats)
    assert all("user" not in r["body"] or isinstance(r["body"]["user"], str) for r in chats)


async def test_every_captured_request_is_answered_and_each_person_kept_apart(
    owui: Gateway,
) -> None:
    http, _ = owui
    # Fresh ids for this run (the database outlives it), one per captured person and `user`.
    renamed: dict[str, str] = {}

    def fresh(name: str) -> str:
        return renamed.setdefault(name, f"{name}-{uuid.uuid4().hex[:8]}")

    sent: dict[str, set[str]] = {}  # user the turn names -> its request ids
    for record in captured():
        headers = {k: v for k, v in record["headers"].items() if k.lower() not in _TRANSPORT}
        headers[USER_ID] = fresh(headers[USER_ID])
        if record["method"] == "GET":
            response = await http.get(record["path"], headers=headers | auth())
            assert response.status_code == 200, response.text
            assert MODEL in {m["id"] for m in response.json()["data"]}
            continue
        body = dict(record["body"])
        if isinstance(body.get("user"), str):
            body["user"] = fresh(body["user"])
        body["max_tokens"] = 4  # the title task asks 1000: the replay checks answers, not length
        request_id = f"owui-{uuid.uuid4().hex}"
        headers |= auth() | {"X-Request-Id": request_id}
        response = await http.post(record["path"], json=body, headers=headers)
        assert response.status_code == 200, (record["body"].get("stream"), response.text)
        if body.get("stream"):
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line for line in response.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "data: [DONE]", response.text
            assert all("error" not in json.loads(e[6:]) for e in events[:-1]), response.text
        else:
            assert response.json()["choices"][0]["message"] is not None
        named = body.get("user") or headers[USER_ID]  # the body before the header
        sent.setdefault(named, set()).add(request_id)

    assert len(sent) == 3  # Alice, Bob, and the `user` an admin set as a model parameter
    for user, request_ids in sent.items():
        export = await _export(http, user)
        assert export is not None, user  # each person's turns are kept under their own id
        theirs = {v["request_id"] for v in export["versions"] if v["request_id"]}
        assert theirs <= request_ids, user  # and nobody else's turns are in there


async def test_the_memory_off_model_is_listed_and_never_stores(owui: Gateway) -> None:
    http, chat = owui
    listed = [m.id async for m in chat.models.list()]
    assert MODEL in listed and NOMEMORY in listed
    assert (await chat.models.retrieve(NOMEMORY)).id == NOMEMORY
    with pytest.raises(openai.NotFoundError):
        await chat.models.retrieve(f"{NOMEMORY}-nomemory")
    person, headers = open_webui_person()
    reply = await chat.chat.completions.create(
        model=NOMEMORY,
        messages=[{"role": "user", "content": "I'm a nurse in Seattle and I love hiking."}],
        extra_headers=headers,
    )
    assert reply.model == NOMEMORY and reply.choices[0].message.content is not None
    stream = await chat.chat.completions.create(
        model=NOMEMORY,
        messages=[{"role": "user", "content": "I'm a nurse in Seattle."}],
        stream=True,
        user=person,
    )
    assert [chunk async for chunk in stream]
    raw = await chat.chat.completions.with_raw_response.create(
        model=NOMEMORY,
        messages=[{"role": "user", "content": "### Task: Generate a concise title."}],
        user=person,
    )
    assert "X-RLPA-Memory-Changed" not in raw.headers  # no profile kept, none changed
    assert await _export(http, person) is None  # no profile read or written for that person
    # The same person on the main model does get one.
    await chat.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], extra_headers=headers
    )
    assert await _export(http, person) is not None
