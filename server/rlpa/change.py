"""What a turn changes in a stored profile, and how that change lands on the latest version.

Every turn's write is a change against the version that turn read, applied to the newest version
in one transaction, so concurrent turns of one user merge instead of overwriting each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.rlpa.traits import MAX_TRAITS


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
