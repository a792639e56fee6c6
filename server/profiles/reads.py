"""How stored profile versions read back (each with what it added and removed), and the
opaque cursors of the user list."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from server.errors import BadRequestError
from server.profiles import schemas as s
from server.profiles.models import ProfileVersion


def _diff(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    old_keys = {t.casefold() for t in old}
    new_keys = {t.casefold() for t in new}
    added = [t for t in new if t.casefold() not in old_keys]
    removed = [t for t in old if t.casefold() not in new_keys]
    return added, removed


def _version_read(row: ProfileVersion, previous: list[str]) -> s.VersionRead:
    added, removed = _diff(previous, row.traits)
    return s.VersionRead(
        version=row.version,
        traits=row.traits,
        added=added,
        removed=removed,
        source=row.source,
        model_name=row.model_name,
        request_id=row.request_id,
        actor_key_id=row.actor_key_id,
        created_at=row.created_at,
    )


def version_reads(versions: Sequence[ProfileVersion]) -> list[s.VersionRead]:
    """Oldest first, each with what it added and removed relative to the one before."""
    reads: list[s.VersionRead] = []
    previous: list[str] = []
    for version in versions:
        reads.append(_version_read(version, previous))
        previous = version.traits
    return reads


def encode_cursor(user: str) -> str:
    return base64.urlsafe_b64encode(user.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        user = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("Invalid cursor.", param="cursor") from exc
    if not user.isprintable():  # no cursor of ours decodes to a control character
        raise BadRequestError("Invalid cursor.", param="cursor")
    return user
