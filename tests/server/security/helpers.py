"""Shared by the security tests: unique users, URL-encoded admin paths, keys made in any tenant."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from server.auth import repository, service
from server.auth import schemas as s
from server.db import create_engine, create_sessionmaker, transaction
from server.settings import Settings


def new_user(tag: str = "sec") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def user_path(user: str, tail: str = "") -> str:
    return f"/admin/users/{quote(user, safe='')}{tail}"


async def key_in_tenant(
    settings: Settings, tenant: str, scopes: list[str], user: str | None = None
) -> tuple[int, str]:
    """(id, secret) of a new key of `tenant`, made as `rlpa keys create --tenant` makes it."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            owner = await repository.ensure_tenant(session, tenant)
            body = s.KeyCreate(scopes=scopes, user=user)
            created = await service.create_key(session, owner, body)
    finally:
        await engine.dispose()
    return created.id, created.key


def chat_body(user: str | None, content: str = "hi", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "scripted", "messages": [{"role": "user", "content": content}]}
    if user is not None:
        body["user"] = user
    body.update(extra)
    return body
