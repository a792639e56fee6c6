"""The audit trail: who changed which user or key, written in the transaction of the change.

Events never hold profile text. An erasure records the user only by a keyed pseudonym
(server/pseudonyms.py) and rewrites the target of the user's earlier events the same way, so that
nothing names an erased user afterwards, nor confirms a guess of who it was.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import repository
from server.auth import schemas as s
from server.db import transaction
from server.errors import BadRequestError

Action = Literal[
    "user.erase",
    "user.opt_out",
    "user.opt_in",
    "profile.replace",
    "profile.rollback",
    "profile.add_trait",
    "profile.remove_trait",
    "key.create",
    "key.revoke",
    "key.update",
]
_MAX_ID = 2**31 - 1  # ids are a 32-bit INTEGER column


@dataclass(frozen=True)
class Actor:
    """Who acts: an API key (None with authentication off, and from the CLI), and through what."""

    key_id: int | None = None
    via: Literal["api", "cli"] = "api"


CLI = Actor(None, "cli")


async def record(
    session: AsyncSession,
    tenant_id: int,
    actor: Actor,
    action: Action,
    target: str,
    **detail: Any,
) -> None:
    """Add an event to the caller's transaction: it commits, or rolls back, with the action."""
    await repository.add_audit_event(
        session, tenant_id, actor.key_id, action, target, {"via": actor.via, **detail}
    )


async def record_erasure(
    session: AsyncSession, tenant_id: int, actor: Actor, user: str, pseudonym: str, **detail: Any
) -> None:
    """The erasure, under the user's pseudonym: also what turns that arrived before it check
    (repository.erased_since), so that none of them brings the user back."""
    await repository.pseudonymize_audit_target(session, tenant_id, user, pseudonym)
    await record(session, tenant_id, actor, "user.erase", pseudonym, **detail)


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(str(event_id).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise BadRequestError("Invalid cursor.", param="cursor") from exc
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= _MAX_ID:
        raise BadRequestError("Invalid cursor.", param="cursor")
    return int(text)


async def list_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
) -> s.AuditList:
    before = decode_cursor(cursor) if cursor else None
    async with transaction(sessionmaker) as session:
        rows = await repository.list_audit_events(
            session, tenant_id, limit=limit + 1, before_id=before
        )
    page = rows[:limit]
    data = [
        s.AuditEventRead(
            id=row.id,
            at=row.at,
            actor_key_id=row.actor_key_id,
            action=row.action,
            target=row.target,
            detail=row.detail,
        )
        for row in page
    ]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return s.AuditList(data=data, next_cursor=next_cursor)
