from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

GroupBy = Literal["hour", "day", "tenant", "key", "user", "model"]
GROUPS: tuple[GroupBy, ...] = ("hour", "day", "tenant", "key", "user", "model")


class UsageTotals(BaseModel):
    requests: int = Field(description="Chat turns answered (/v1/chat/completions, /v1/responses).")
    prompt_tokens: int
    completion_tokens: int = Field(description="Hidden profile block included, as in `usage`.")
    total_tokens: int


class UsageRow(UsageTotals):
    """One group's sums; the fields it was not grouped by are null."""

    hour: datetime | None = Field(default=None, description="The hour's start (UTC).")
    day: date | None = Field(default=None, description="The day (UTC).")
    tenant: str | None = None
    key_id: int | None = Field(default=None, description="Null: served with authentication off.")
    key_name: str | None = None
    key_prefix: str | None = None
    user_hash: str | None = Field(
        default=None,
        description="The end user's keyed pseudonym, as in the access log (filter with `user` "
        "to find one user's); null: turns that named no user.",
    )
    model: str | None = None


class UsageReport(BaseModel):
    object: Literal["usage.report"] = "usage.report"
    group_by: list[GroupBy]
    since: datetime | None
    until: datetime | None
    data: list[UsageRow]
    total: UsageTotals = Field(description="Every turn the filters match, not only this page.")
    has_more: bool = Field(description="More groups than `limit`: narrow the filters.")
