"""The contract version a gateway serves, and what a turn's block does to the stored profile
under each: v2 applies the listed change, v1 the diff of the rewrite; neither ever erases a
profile with an empty block."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from server import rlpa
from server.app import create_app
from server.backends import SHIPPED_ADAPTER, contract_version
from server.settings import Settings
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.live import serve
from tests.fixtures.upstreams import ScriptedUpstream

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_the_shipped_adapter_declares_its_contract_and_a_bare_model_gets_the_latest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipped = json.loads(SHIPPED_ADAPTER.with_name("rlpa.json").read_text())["contract_version"]
    assert contract_version(Settings(_env_file=None)) == shipped  # type: ignore[call-arg]
    bare = Settings(_env_file=None, adapter="none")  # type: ignore[call-arg]
    assert contract_version(bare) == rlpa.LATEST_VERSION == 2
    upstream = Settings(_env_file=None, backend="openai", upstream_urls=["http://x/v1"])  # type: ignore[call-arg]
    assert contract_version(upstream) == 2
    pinned = Settings(
        _env_file=None, backend="openai", upstream_urls=["http://x/v1"], contract_version=1
    )  # type: ignore[call-arg]
    assert contract_version(pinned) == 1
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"")
    assert contract_version(Settings(_env_file=None, adapter=str(adapter))) == 1  # type: ignore[call-arg]
    # A lone adapter file is served under v1, and the operator is told how to say otherwise.
    assert "no rlpa.json beside it" in caplog.text and "RLPA_CONTRACT_VERSION=2" in caplog.text
    (tmp_path / "rlpa.json").write_text('{"contract_version": 7}')
    with pytest.raises(ValueError, match="contract 7"):
        contract_version(Settings(_env_file=None, adapter=str(adapter)))  # type: ignore[call-arg]


@pytest.fixture(scope="module", params=[1, 2])
def gateway(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    scripted_pair: tuple[ScriptedUpstream, ScriptedUpstream],
) -> Iterator[tuple[str, int]]:
    settings = make_settings(
        backend="openai", upstream_urls=[scripted_pair[1].url], contract_version=request.param
    )
    with serve(create_app(settings)) as url:
        yield url, request.param


def _turn(url: str, user: str, upstream: ScriptedUpstream, block: list[str]) -> list[str]:
    upstream.script.texts = [rlpa.render_output(block, "ok")]
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers=HEADERS,
        json={
            "model": "scripted",
            "user": user,
            "messages": [{"role": "user", "content": "hello"}],
            "rlpa": {"return_profile": True},
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "ok"
    traits: list[str] = response.json()["rlpa"]["profile"]
    stored = httpx.get(f"{url}/admin/users/{quote(user, safe='')}/profile", headers=HEADERS)
    assert stored.json()["traits"] == traits
    return traits


def test_an_empty_block_never_erases_and_changes_land_per_contract(
    gateway: tuple[str, int], upstream_b: ScriptedUpstream
) -> None:
    url, version = gateway
    user = f"contract-{uuid.uuid4().hex[:8]}"
    assert _turn(url, user, upstream_b, ["is a nurse", "lives in Seattle"]) == [
        "is a nurse",
        "lives in Seattle",
    ]
    assert _turn(url, user, upstream_b, []) == ["is a nurse", "lives in Seattle"]
    if version == 2:  # only what changed: a move, and nothing about the nurse
        moved = ["forget: lives in Seattle", "lives in Denver"]
    else:  # the whole profile, rewritten
        moved = ["is a nurse", "lives in Denver"]
    assert _turn(url, user, upstream_b, moved) == ["is a nurse", "lives in Denver"]
    # The upstream was shown the profile the way its contract says.
    system = upstream_b.bodies[-1]["messages"][0]["content"]
    assert system.startswith(rlpa.SYSTEM_PROMPT_V2 if version == 2 else rlpa.SYSTEM_PROMPT)
    assert "lives in Seattle" in system
