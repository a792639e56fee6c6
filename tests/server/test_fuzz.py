"""Schemathesis over the gateway's own OpenAPI schema: whatever a client sends to /v1 or /admin,
the answer is never a 5xx, and every error is in OpenAI's shape.

The gateway runs on the `openai` backend over the scripted upstream, in a PostgreSQL database
of its own (the fuzzer creates keys and users and erases them) with its own Redis prefix.
Generation is seeded and derandomized, so a run is repeatable and its cost is fixed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import TypeAdapter, ValidationError
from schemathesis.config import SchemathesisConfig

from server import migrate
from server.app import create_app
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY, create_pg_database, drop_pg_database
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream

pytestmark = pytest.mark.slow

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Per operation and phase: with the coverage phase's cases, about 2,400 requests in 30 s.
MAX_EXAMPLES = 150
_KEY_ID = TypeAdapter(int)
UPSTREAM_MODEL = "scripted"  # the one model the scripted upstream lists


@pytest.fixture(scope="module")
async def fuzz_pg_url() -> AsyncIterator[str]:
    name, url = await create_pg_database()
    await asyncio.to_thread(migrate.upgrade, url)
    yield url
    await drop_pg_database(name)


@pytest.fixture(scope="module")
def fuzzed_gateway(
    make_settings: Callable[..., Settings],
    redis_prefix: str,
    fuzz_pg_url: str,
    scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream],
) -> Iterator[str]:
    settings = make_settings(
        database_url=fuzz_pg_url,
        redis_key_prefix=f"{redis_prefix}fuzz:",
        backend="openai",
        upstream_urls=[scripted_pair[0].url],
        upstream_retries=1,
        auth_failures_per_minute=1_000_000,  # the fuzzer's own auth cases must not lock it out
    )
    scripted_pair[0].reset()  # answer every turn: a fault an earlier module scripted is not ours
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def own_key_id(fuzzed_gateway: str) -> int:
    keys = httpx.get(f"{fuzzed_gateway}/admin/keys", headers=HEADERS).json()["data"]
    (key,) = keys  # the bootstrap admin key, alone in this database
    return int(key["id"])


def _load_schema() -> Any:
    """The schema the gateway serves, built at import so that schemathesis can parametrize at
    collection. Its fixture-based loader (`schemathesis.pytest.from_fixture`, 4.32) sets the
    private `Node._nodeid`, which pytest 9.2 no longer has."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20260611,
            "headers": HEADERS,
            "generation": {
                "mode": "all",  # valid requests, and requests that break the schema
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",  # nothing replayed from earlier runs, nothing written
                "with-security-parameters": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True, "error-feedback": {"enabled": False}},
                "stateful": {"enabled": False},
            },
        }
    )
    app = create_app(Settings(_env_file=None))  # default settings: the routes are the same
    schema = schemathesis.openapi.from_dict(app.openapi(), config=config)
    return schema.include(path_regex=r"^/(v1|admin)/")


schema = _load_schema()


def _revokes_own_key(case: Any, own_key_id: int) -> bool:
    """Revoking the key the fuzzer authenticates with, or giving it an expiry or limits, would
    leave every later case a 401 or a 429."""
    if case.method not in ("DELETE", "PATCH") or case.operation.path != "/admin/keys/{key_id}":
        return False
    try:
        return _KEY_ID.validate_python(str(case.path_parameters["key_id"])) == own_key_id
    except ValidationError:
        return False


def _is_openai_error(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return False
    error = body["error"]
    return (
        set(error) == {"message", "type", "param", "code"}
        and isinstance(error["message"], str)
        and isinstance(error["type"], str)
        and all(
            error[field] is None or isinstance(error[field], str) for field in ("param", "code")
        )
    )


@schema.parametrize()
def test_no_request_gets_a_server_error_and_errors_are_openai_shaped(
    case: Any, fuzzed_gateway: str, own_key_id: int
) -> None:
    if _revokes_own_key(case, own_key_id):
        return
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = UPSTREAM_MODEL  # else every chat case stops at "no such model"
    response = case.call(base_url=fuzzed_gateway, timeout=30)
    where = f"{response.status_code} for:\n{case.as_curl_command(headers=HEADERS)}"
    assert response.status_code < 500, f"{where}\n{response.content[:500]!r}"
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        assert _is_openai_error(body), f"{where}\n{response.content[:500]!r}"
