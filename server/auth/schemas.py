from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# `profile`: a key bound to one end user reads, exports and erases that user's own profile.
Scope = Literal["chat", "admin", "profile"]
# No C0/C1 control characters (NUL included, which PostgreSQL cannot store in text): for labels
# and searches that are shown back to people.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=128, pattern=NO_CONTROL_CHARACTERS)
    scopes: list[Scope] = Field(default=["chat"], min_length=1)
    user: str | None = Field(
        default=None, max_length=256, description="Bind the key to this end user."
    )


class KeyRead(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    user: str | None
    tenant: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The secret. Shown once; only its prefix is stored readable.")


class KeyList(BaseModel):
    data: list[KeyRead]


class AuditEventRead(BaseModel):
    id: int
    at: datetime
    actor_key_id: int | None = Field(description="The API key that acted; null from the CLI.")
    action: str
    target: str = Field(
        description="The user id, a key id, or for an erased user 'blake2b:' and a hash."
    )
    detail: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditEventRead]
    next_cursor: str | None
