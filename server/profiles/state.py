"""A user's profile as a chat turn reads it: one type, built by keyword, cached as it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class ProfileState:
    """The current version of a user's profile and whether personalization is on."""

    version: int
    traits: list[str]
    personalization: bool
    source: str | None  # who wrote this version: "model", "admin" or "user"; None before any
    updated_at: datetime | None
    user_id: int  # the end_user row: a turn writes only to the row it read, never to a successor
