from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

# `profile`: a key bound to one end user reads, exports and erases that user's own profile.
Scope = Literal["chat", "admin", "profile"]
# No C0/C1 control characters (NUL included, which PostgreSQL cannot store in text): for labels
# and searches that are shown back to people.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f]*$"


# Limits are a 32-bit INTEGER column.
MAX_LIMIT = 2**31 - 1
_EXPIRES = "From then on the key is refused (401). Null: it never expires."
_RPM = (
    "Requests per minute this key may make (429 past it); null: the gateway's "
    "RLPA_RATE_LIMIT_PER_MINUTE; 0: no limit."
)
_TPM = (
    "Prompt and completion tokens per minute this key may use (429 once its minute holds "
    "them); null: the gateway's RLPA_RATE_LIMIT_TOKENS_PER_MINUTE; 0: no limit."
)


class KeyLimits(BaseModel):
    expires_at: AwareDatetime | None = Field(default=None, description=_EXPIRES)
    rpm_limit: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description=_RPM)
    tpm_limit: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description=_TPM)

    @field_validator("expires_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01 at +05:00 has no UTC time
            raise ValueError("out of range") from exc


class KeyCreate(KeyLimits):
    name: str = Field(default="", max_length=128, pattern=NO_CONTROL_CHARACTERS)
    scopes: list[Scope] = Field(default=["chat"], min_length=1)
    user: str | None = Field(
        default=None, max_length=256, description="Bind the key to this end user."
    )


class KeyUpdate(KeyLimits):
    """Only the fields sent change; null clears a field."""

    name: str | None = Field(default=None, max_length=128, pattern=NO_CONTROL_CHARACTERS)


class KeyRead(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    user: str | None
    tenant: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    rpm_limit: int | None
    tpm_limit: int | None
    last_used_at: datetime | None = Field(
        description="The last request it authenticated, to within RLPA_USAGE_FLUSH_S."
    )


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
