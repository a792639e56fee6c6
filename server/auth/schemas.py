from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Scope = Literal["chat", "admin"]
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
