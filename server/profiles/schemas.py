from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

# Versions are a 32-bit INTEGER column: a larger number cannot even be compared against it.
MAX_VERSION = 2**31 - 1


class ProfileRead(BaseModel):
    user: str
    version: int
    traits: list[str]
    updated_at: datetime
    source: str


class ProfileUpdate(BaseModel):
    traits: list[str] = Field(description="The whole new profile, one trait per item.")


class TraitCreate(BaseModel):
    trait: str = Field(description="One trait to add; a trait already there changes nothing.")


class RollbackRequest(BaseModel):
    version: int = Field(
        ge=1,
        le=MAX_VERSION,
        strict=True,  # JSON's `true` is not version 1
        description="The version whose traits become the new profile.",
    )


class VersionRead(BaseModel):
    version: int
    traits: list[str]
    added: list[str]
    removed: list[str]
    source: str
    model_name: str | None = None
    request_id: str | None = None
    actor_key_id: int | None = Field(
        default=None,
        description="The API key of an admin's (or, source `user`, the user's own) edit; null "
        "for chat turns.",
    )
    created_at: datetime


class HistoryRead(BaseModel):
    user: str
    data: list[VersionRead]


class UserSummary(BaseModel):
    user: str
    version: int
    traits_count: int
    last_seen_at: datetime
    personalization: bool


class UserList(BaseModel):
    data: list[UserSummary]
    next_cursor: str | None


class UserUpdate(BaseModel):
    personalization: bool


class UserExport(BaseModel):
    user: str
    tenant: str
    personalization: bool
    created_at: datetime
    last_seen_at: datetime
    versions: list[VersionRead]
    exported_at: datetime

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
