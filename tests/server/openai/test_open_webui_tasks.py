"""Open WebUI's own tasks (title, tags, follow-ups) sent to the main model, as it sends them when
no Task Model is set: recognised by their prompt (server/chat/client_tasks.py), they neither read
nor write the person's profile, and their replies are the JSON Open WebUI parses. Replayed from
the captured requests (tests/fixtures/open_webui/), identity headers included, through a
scripted upstream that shows what the model is asked, and on the real embedded model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server import rlpa
from server.app import create_app
from server.backends import DEFAULT_ADAPTED_MODEL_NAME
from server.backends.llamacpp import LlamaCppBackend
from server.chat.client_tasks import TASK_SCHEMAS
from server.settings import Settings
from tests.fixtures.app import auth
from tests.fixtures.live import serve
from tests.fixtures.models import embedded_settings
from tests.fixtures.upstreams import ScriptedUpstream, stored_traits
from tests.server.openai.test_identity import OPEN_WEBUI, gateway, open_webui_person

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[2] / "fixtures" / "open_webui"
MODEL = DEFAULT_ADAPTED_MODEL_NAME
MEMORY_CHANGED = "x-rlpa-memory-changed"
KNOWN = "works night shifts"  # the person's stored trait
# What a model that is not held to the format writes for any turn: a block, then a reply.
UNCONSTRAINED = ["<profile>\n- loves hiking\n</profile>\n\n<response>\n", '{"title": "Hiking"}']
# Headers of the captured transport, not of Open WebUI: the test client sets its own.
_TRANSPORT = {"authorization", "host", "content-length", "accept-encoding", "connection"}


def _replays(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _tasks() -> dict[str, dict[str, Any]]:
    """Open WebUI's title, tags and follow-up requests, as it sent them to the main model."""
    return {r["task"]: r for r in _replays("tasks.jsonl") if r["task"] in TASKS}


def _chat() -> dict[str, Any]:
    """Alice's first captured chat, whole (not streamed)."""
    return next(r for r in _replays("requests.jsonl") if r["method"] == "POST")


TASKS = {"title": "title", "tags": "tags", "follow_up": "follow_ups"}  # endpoint: JSON key


async def _replay(
    http: httpx.AsyncClient, record: dict[str, Any], person: str, **body: Any
) -> httpx.Response:
    headers = {k: v for k, v in record["headers"].items() if k.lower() not in _TRANSPORT}
    headers |= auth() | {"x-openwebui-user-id": person}
    response = await http.post(record["path"], json=record["body"] | body, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def _profile(http: httpx.AsyncClient, person: str) -> dict[str, Any]:
    response = await http.get(f"/admin/users/{quote(person, safe='')}/profile")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _knows(http: httpx.AsyncClient, person: str, traits: list[str]) -> None:
    """The admin sets the person's stored profile."""
    put = await http.put(f"/admin/users/{quote(person, safe='')}/profile", json={"traits": traits})
    assert put.status_code == 200, put.text


@pytest.fixture
def scripted(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> Iterator[tuple[str, ScriptedUpstream]]:
    """A gateway set up for Open WebUI in front of a scripted upstream that says it is vLLM
    (takes a grammar as `structured_outputs`)."""
    upstream_a.owned_by, upstream_a.version = "vllm", "0.12.0"
    upstream_a.script.texts = UNCONSTRAINED
    settings = make_settings(
        backend="openai",
        upstream_urls=[upstream_a.url],
        upstream_retries=0,
        served_model_name=MODEL,
        user_header=OPEN_WEBUI,
    )
    with serve(create_app(settings)) as url:
        yield url, upstream_a


async def test_tasks_on_the_main_model_neither_read_nor_write_the_profile_and_chats_do(
    scripted: tuple[str, ScriptedUpstream],
) -> None:
    url, upstream = scripted
    person, _ = open_webui_person()
    async with httpx.AsyncClient(base_url=url, headers=auth(), timeout=60) as http:
        await _knows(http, person, [KNOWN])
        for task, key in TASKS.items():
            response = await _replay(http, _tasks()[task], person)
            assert MEMORY_CHANGED not in response.headers  # no profile kept, none changed
            sent = upstream.bodies[-1]
            # The model is not shown the profile, and is held to the task's JSON with an empty
            # block (vLLM's structured output).
            assert stored_traits(sent) == [] and KNOWN not in json.dumps(sent["messages"])
            assert sent["structured_outputs"]["grammar"] == rlpa.output_grammar(
                reply=rlpa.JsonReply(schema=TASK_SCHEMAS[key]), learn=False
            )
        # The block the upstream wrote anyway (it ignored the grammar) was not stored.
        profile = await _profile(http, person)
        assert profile["traits"] == [KNOWN] and profile["version"] == 1

        # Alice's own captured chat, from the same person: the profile is read, the block stored.
        response = await _replay(http, _chat(), person)
        assert response.headers[MEMORY_CHANGED] == "true"
        assert stored_traits(upstream.bodies[-1]) == [KNOWN]
        profile = await _profile(http, person)
        assert profile["version"] == 2 and "loves hiking" in profile["traits"]


async def test_with_task_detection_off_a_task_is_a_turn_that_learns(
    make_settings: Callable[..., Settings], upstream_a: ScriptedUpstream
) -> None:
    upstream_a.owned_by, upstream_a.version = "vllm", "0.12.0"
    upstream_a.script.texts = UNCONSTRAINED
    settings = make_settings(
        backend="openai",
        upstream_urls=[upstream_a.url],
        upstream_retries=0,
        served_model_name=MODEL,
        user_header=OPEN_WEBUI,
        client_task_detection=False,
    )
    person, _ = open_webui_person()
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=auth(), timeout=60) as http:
            await _knows(http, person, [KNOWN])
            response = await _replay(http, _tasks()["title"], person)
            assert response.headers[MEMORY_CHANGED] == "true"
            assert stored_traits(upstream_a.bodies[-1]) == [KNOWN]
            assert (await _profile(http, person))["version"] == 2  # it learnt from the task


@pytest.fixture(scope="module")
async def served_context() -> AsyncIterator[LlamaCppBackend]:
    """The embedded model with the context it is served with (RLPA_N_CTX's default): a task
    prompt quotes the chat, past the 1,024 tokens the other tests' backend holds."""
    backend = LlamaCppBackend(embedded_settings(n_ctx=Settings.model_fields["n_ctx"].default))
    await backend.start()
    yield backend
    await backend.aclose()


@pytest.mark.parametrize("model", [MODEL, f"{MODEL}-nomemory"])
async def test_the_embedded_model_answers_each_task_with_the_json_open_webui_reads(
    model: str, make_settings: Callable[..., Settings], served_context: LlamaCppBackend
) -> None:
    """On the main model (no Task Model set) and on its memory-off id (the Task Model)."""
    settings = make_settings(profile_max_tokens=48, user_header=OPEN_WEBUI)
    person, _ = open_webui_person()
    async with gateway(settings, served_context) as (http, _):
        for task, key in TASKS.items():
            response = await _replay(http, _tasks()[task], person, model=model, seed=7)
            answer = response.json()
            assert answer["choices"][0]["finish_reason"] == "stop", answer
            reply = json.loads(answer["choices"][0]["message"]["content"])
            assert list(reply) == [key], reply
            if key == "title":
                assert isinstance(reply[key], str) and reply[key].strip()
            else:
                assert reply[key] and all(isinstance(item, str) for item in reply[key])
        export = await http.get(f"/admin/users/{quote(person, safe='')}/export")
        assert export.status_code == 404  # nothing of this person read or kept
