"""/metrics, /docs, /redoc and /openapi.json: open on loopback, an admin key elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running

PAGES = ("/metrics", "/docs", "/redoc", "/openapi.json")
# Nothing listens on the discard port: these apps never chat, so the upstream is never called.
_NO_UPSTREAM = ["http://127.0.0.1:9/v1"]


def _settings(make_settings: Callable[..., Settings], **overrides: object) -> Settings:
    return make_settings(
        db="sqlite", redis=False, backend="openai", upstream_urls=_NO_UPSTREAM, **overrides
    )


@pytest.fixture(scope="module")
async def public_host(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway as configured to listen on every interface."""
    async with running(create_app(_settings(make_settings, host="0.0.0.0"))) as client:
        yield client


async def _chat_key(client: httpx.AsyncClient) -> str:
    created = await client.post("/admin/keys", json={"scopes": ["chat"]}, headers=auth())
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def _assert_opened(path: str, response: httpx.Response) -> None:
    assert response.status_code == 200, (path, response.text)
    if path == "/metrics":
        assert "rlpa_auth_failures_total" in response.text
    elif path == "/openapi.json":
        assert "/v1/chat/completions" in response.json()["paths"]
    else:  # the Swagger and ReDoc pages load the schema from the protected URL
        assert "/openapi.json" in response.text


async def test_operator_pages_are_open_on_loopback(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(create_app(_settings(make_settings))) as client:
        for path in PAGES:
            _assert_opened(path, await client.get(path))


@pytest.mark.parametrize("path", PAGES)
async def test_operator_pages_need_an_admin_key_off_loopback(
    public_host: httpx.AsyncClient, path: str
) -> None:
    missing = await public_host.get(path)
    wrong = await public_host.get(path, headers=auth("rlpa-not-a-key-at-all"))
    for response in (missing, wrong):
        assert response.status_code == 401, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert response.json()["error"]["type"] == "authentication_error"
    chat_only = await public_host.get(path, headers=auth(await _chat_key(public_host)))
    assert chat_only.status_code == 403
    assert chat_only.json()["error"]["type"] == "permission_error"
    _assert_opened(path, await public_host.get(path, headers=auth()))


async def test_an_admin_key_bound_to_no_real_user_can_scrape_metrics_and_nothing_else(
    public_host: httpx.AsyncClient,
) -> None:
    """What README advises for a Prometheus scraper."""
    body = {"scopes": ["admin"], "user": "prometheus"}
    scraper = (await public_host.post("/admin/keys", json=body, headers=auth())).json()["key"]
    _assert_opened("/metrics", await public_host.get("/metrics", headers=auth(scraper)))
    assert (await public_host.get("/admin/keys", headers=auth(scraper))).status_code == 403
    listed = await public_host.get("/admin/users", headers=auth(scraper))
    assert listed.json()["data"] == []


async def test_public_flags_open_only_their_own_pages(
    make_settings: Callable[..., Settings],
) -> None:
    metrics_open = _settings(make_settings, host="0.0.0.0", metrics_public=True)
    async with running(create_app(metrics_open)) as client:
        _assert_opened("/metrics", await client.get("/metrics"))
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 401, path
    docs_open = _settings(make_settings, host="0.0.0.0", docs_public=True)
    async with running(create_app(docs_open)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            _assert_opened(path, await client.get(path))
        assert (await client.get("/metrics")).status_code == 401


async def test_health_and_ready_stay_open_off_loopback(public_host: httpx.AsyncClient) -> None:
    assert (await public_host.get("/health")).json() == {"status": "ok"}
    ready = await public_host.get("/ready")
    # The upstream is down, so not ready; but it answers without a key.
    assert ready.status_code == 503 and ready.json()["checks"]["database"] is True


async def test_operator_pages_are_not_in_the_schema(public_host: httpx.AsyncClient) -> None:
    paths = (await public_host.get("/openapi.json", headers=auth())).json()["paths"]
    assert not set(paths) & set(PAGES)
