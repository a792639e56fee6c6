"""Usage through the real app: turns on the scripted upstream (chat completions, streamed or
not, and the Responses API) add up in `GET /admin/usage` exactly as their `usage` said, per key,
end user and model, on PostgreSQL + Redis and on SQLite; the filters and groups select what they
name; the access log line and the per-tenant metrics carry the same counts."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from server.settings import Settings
from tests.fixtures.app import Gateway, auth
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.gateway import MODEL
from tests.fixtures.upstreams import ScriptedUpstream
from tests.server.security.helpers import chat_body, key_in_tenant, new_user


@dataclass
class UsageGateway:
    """The scripted gateway, with the calls these tests make of it."""

    gateway: UsageGateway

    @property
    def client(self) -> httpx.AsyncClient:
        return self.gateway.client

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    async def key(self, **limits: Any) -> tuple[int, str]:
        """(id, secret) of a new chat key of the default tenant, with these limits."""
        made = await self.client.post("/admin/keys", json={"scopes": ["chat"], **limits})
        assert made.status_code == 201, made.text
        return made.json()["id"], made.json()["key"]

    async def usage(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get("/admin/usage", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def chat(self, key: str, user: str | None, **extra: Any) -> dict[str, int]:
        """A turn's `usage`, streamed turns read from their last chunk."""
        body = chat_body(user, **extra)
        response = await self.client.post("/v1/chat/completions", json=body, headers=auth(key))
        assert response.status_code == 200, response.text
        if not extra.get("stream"):
            return dict(response.json()["usage"])
        lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
        chunks = [httpx.Response(200, content=line).json() for line in lines]
        return dict(next(c["usage"] for c in reversed(chunks) if c.get("usage")))


@pytest.fixture
def gateway(scripted_gateway: Gateway) -> UsageGateway:
    return UsageGateway(scripted_gateway)


def _sum(usages: list[dict[str, int]]) -> dict[str, int]:
    return {
        "requests": len(usages),
        "prompt_tokens": sum(u["prompt_tokens"] for u in usages),
        "completion_tokens": sum(u["completion_tokens"] for u in usages),
        "total_tokens": sum(u["total_tokens"] for u in usages),
    }


def _counts(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")}


async def test_turns_add_up_per_user_key_and_model_as_their_usage_said(
    gateway: UsageGateway, upstream_a: ScriptedUpstream
) -> None:
    key_id, key = await gateway.key()
    ann, bob = new_user("ann"), new_user("bob")
    upstream_a.script.chunks = 3
    by_ann = [await gateway.chat(key, ann), await gateway.chat(key, ann, max_tokens=40)]
    upstream_a.script.chunks = 5
    by_bob = [await gateway.chat(key, bob, stream=True, stream_options={"include_usage": True})]
    anonymous = [await gateway.chat(key, None)]
    answer = await gateway.client.post(
        "/v1/responses",
        json={"model": "scripted", "input": "hello", "user": ann},
        headers=auth(key),
    )
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    by_ann.append(
        {
            "prompt_tokens": used["input_tokens"],
            "completion_tokens": used["output_tokens"],
            "total_tokens": used["total_tokens"],
        }
    )

    everyone = await gateway.usage(key_id=key_id, group_by="user")
    assert everyone["total"] == _sum(by_ann + by_bob + anonymous)
    assert not everyone["has_more"]
    rows = {row["user_hash"]: _counts(row) for row in everyone["data"]}
    assert len(rows) == 3 and rows[None] == _sum(anonymous)
    assert sorted(rows.values(), key=str) == sorted(
        [_sum(by_ann), _sum(by_bob), _sum(anonymous)], key=str
    )
    # The id itself is nowhere: the user's pseudonym stands for it, and `user` finds it.
    assert ann not in str(everyone) and bob not in str(everyone)
    only_ann = await gateway.usage(key_id=key_id, user=ann, group_by="user,model")
    (row,) = only_ann["data"]
    assert _counts(row) == _sum(by_ann) == only_ann["total"]
    assert row["model"] == "scripted" and rows[row["user_hash"]] == _sum(by_ann)

    by_key = await gateway.usage(key_id=key_id, group_by="key")
    (row,) = by_key["data"]
    assert (row["key_id"], row["key_prefix"]) == (key_id, key[: len(row["key_prefix"])])
    assert _counts(row) == everyone["total"]


async def test_filters_select_the_hours_keys_and_models_they_name(gateway: UsageGateway) -> None:
    key_id, key = await gateway.key()
    other_id, other = await gateway.key()
    mine = [await gateway.chat(key, new_user()), await gateway.chat(key, new_user())]
    theirs = [await gateway.chat(other, new_user())]
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)

    by_hour = await gateway.usage(key_id=key_id, group_by="hour")
    assert [(row["hour"], _counts(row)) for row in by_hour["data"]] == [
        (hour.isoformat().replace("+00:00", "Z"), _sum(mine))
    ]
    by_day = await gateway.usage(key_id=other_id, group_by="day,model")
    assert [(r["day"], r["model"], _counts(r)) for r in by_day["data"]] == [
        (now.date().isoformat(), "scripted", _sum(theirs))
    ]
    # `since` counts from the start of the hour it falls in; `until` takes hours before it.
    assert (await gateway.usage(key_id=key_id, since=now.isoformat()))["total"] == _sum(mine)
    later = (now + timedelta(hours=1)).isoformat()
    assert (await gateway.usage(key_id=key_id, since=later))["total"]["requests"] == 0
    assert (await gateway.usage(key_id=key_id, until=hour.isoformat()))["total"]["requests"] == 0
    assert (await gateway.usage(key_id=key_id, until=later))["total"] == _sum(mine)
    assert (await gateway.usage(key_id=key_id, model="other"))["total"]["requests"] == 0
    assert (await gateway.usage(key_id=key_id, group_by=""))["data"] == [
        {**(await gateway.usage(key_id=key_id))["total"], **dict.fromkeys(_DIMENSIONS)}
    ]
    tenants = await gateway.usage(group_by="tenant")
    assert [row["tenant"] for row in tenants["data"]] == ["default"]

    for bad in ("week", "hour,day"):
        refused = await gateway.client.get("/admin/usage", params={"group_by": bad})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "group_by"


_DIMENSIONS = ("hour", "day", "tenant", "key_id", "key_name", "key_prefix", "user_hash", "model")


async def test_a_key_sees_only_its_own_tenants_usage(gateway: UsageGateway) -> None:
    _, admin = await key_in_tenant(gateway.settings, f"t-{uuid.uuid4().hex[:8]}", ["admin"])
    _, chat = await key_in_tenant(gateway.settings, "default", ["chat"])
    await gateway.chat(chat, new_user())
    foreign = await gateway.client.get("/admin/usage", headers=auth(admin))
    assert foreign.status_code == 200 and foreign.json()["total"]["requests"] == 0
    assert (await gateway.usage())["total"]["requests"] >= 1


async def test_the_access_log_line_and_tenant_metrics_carry_the_turns_tokens(
    gateway: UsageGateway, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = await gateway.key()
    _, foreign = await key_in_tenant(gateway.settings, f"t-{uuid.uuid4().hex[:8]}", ["chat"])

    def sample(tenant: str, name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"tenant": tenant, **labels}) or 0.0

    before = {
        tenant: (
            sample(tenant, "rlpa_tenant_requests_total"),
            sample(tenant, "rlpa_tenant_tokens_total", kind="completion"),
        )
        for tenant in ("default", "other")
    }
    with caplog.at_level(logging.INFO, logger="server.access"):
        used = await gateway.chat(key, new_user())
        other = await gateway.chat(foreign, new_user())
    lines = [
        getattr(r, "rlpa")  # noqa: B009 (set by the access logger, unknown to LogRecord)
        for r in caplog.records
        if r.name == "server.access" and "/v1/chat" in r.getMessage()
    ]
    assert [(line["prompt_tokens"], line["completion_tokens"]) for line in lines] == [
        (used["prompt_tokens"], used["completion_tokens"]),
        (other["prompt_tokens"], other["completion_tokens"]),
    ]
    # The tenant that RLPA_METRICS_TENANTS names keeps its label; any other is "other".
    for tenant, turn in (("default", used), ("other", other)):
        requests, completion = before[tenant]
        assert sample(tenant, "rlpa_tenant_requests_total") == requests + 1
        after = sample(tenant, "rlpa_tenant_tokens_total", kind="completion")
        assert after == completion + turn["completion_tokens"]


@pytest.mark.slow
async def test_the_embedded_models_turns_add_up_as_their_usage_said(
    client: openai.AsyncOpenAI, gateway_url: str
) -> None:
    """The real embedded model, through the official client: what the usage says, streamed or
    not, is what the rollup holds."""
    user = new_user("embedded")
    messages: Any = [{"role": "user", "content": "Hi! I grow tomatoes."}]
    whole = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=16, user=user
    )
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=16,
        user=user,
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = [chunk.usage async for chunk in stream if chunk.usage is not None]
    usages = [whole.usage, *streamed]
    assert len(usages) == 2 and all(u is not None for u in usages)
    async with httpx.AsyncClient(base_url=gateway_url, headers=auth(ADMIN_KEY)) as admin:
        report = await admin.get("/admin/usage", params={"user": user, "group_by": "model"})
    assert report.status_code == 200, report.text
    assert report.json()["total"] == _sum([u.model_dump() for u in usages if u is not None])
    assert [row["model"] for row in report.json()["data"]] == [MODEL]
