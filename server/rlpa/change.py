"""What a turn changes in a stored profile, and how that change lands on the latest version.

Every turn's write is a change against the version that turn read, applied to the newest version
in one transaction, so concurrent turns of one user merge instead of overwriting each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.rlpa.traits import MAX_TRAITS

FORGET = "forget:"
# "- forget: lives in Seattle" drops a stored trait (contract v2). Case and spacing are forgiven.
_FORGET_LINE = re.compile(r"^forget\s*:\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ProfileChange:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def apply(self, traits: list[str]) -> list[str]:
        """`traits` with `remove` dropped and `add` appended (case-insensitively, no duplicates).

        At MAX_TRAITS, additions that do not fit are dropped: what is stored is never pushed out
        to make room.
        """
        gone = {t.casefold() for t in self.remove}
        result = [t for t in traits if t.casefold() not in gone]
        seen = {t.casefold() for t in result}
        for trait in self.add:
            key = trait.casefold()
            if key not in seen and len(result) < MAX_TRAITS:
                seen.add(key)
                result.append(trait)
        return result


def change_from_rewrite(read: list[str], block: list[str]) -> ProfileChange:
    """Contract v1: the block is the whole profile; its change is the diff against what the turn
    read. An empty block never erases a non-empty profile."""
    if not block:
        return ProfileChange()
    read_keys = {t.casefold() for t in read}
    block_keys = {t.casefold() for t in block}
    return ProfileChange(
        add=tuple(t for t in block if t.casefold() not in read_keys),
        remove=tuple(t for t in read if t.casefold() not in block_keys),
    )


def change_from_block(block: Sequence[str]) -> ProfileChange:
    """Contract v2: each line asserts a trait, or with `forget:` drops one; nothing else
    changes."""
    add: list[str] = []
    remove: list[str] = []
    for line in block:
        match = _FORGET_LINE.match(line)
        if match is None:
            add.append(line)
        elif match.group(1).strip():
            remove.append(match.group(1).strip())
    return ProfileChange(add=tuple(add), remove=tuple(remove))


def render_change(change: ProfileChange) -> list[str]:
    """The v2 block lines of a change: removals first, then additions."""
    return [f"{FORGET} {trait}" for trait in change.remove] + list(change.add)


def profile_change(version: int, read: list[str], block: list[str]) -> ProfileChange:
    """What a turn's profile block changes in the profile the turn read, per contract version."""
    if version == 1:
        return change_from_rewrite(read, block)
    if version == 2:
        return change_from_block(block)
    raise ValueError(f"unknown contract version {version}")


def apply_block(version: int, stored: list[str], block: list[str] | None) -> list[str]:
    """The profile after a turn whose block is `block` (None: no block, nothing changes), read
    against `stored`: what the gateway would store, for training and evaluation to score."""
    if block is None:
        return list(stored)
    return profile_change(version, stored, block).apply(stored)
