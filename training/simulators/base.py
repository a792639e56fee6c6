"""The one interface every simulated user implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from training.data.profiles import Profile, Trait

Message = Mapping[str, str]
"""{"role": "user" | "assistant", "content": ...}: the chat as the user sees it."""


class UserSimulator(Protocol):
    """A user with a hidden profile who reveals it slowly, following RLPA's role-play rules."""

    def start(self, profile: Profile, seed: int) -> None:
        """Begin a new conversation as this user; forgets everything from the last one."""
        ...

    def reply(self, history: Sequence[Message]) -> str:
        """The user's next message; with an empty history, the opening message."""
        ...

    def revealed(self) -> list[Trait]:
        """Traits said so far, as they are now (a changed preference shows its new value)."""
        ...

    def true_profile(self) -> Profile:
        """The profile as it is now: it differs from the one given to start() after a change."""
        ...

    def change_preference(self) -> tuple[Trait, Trait] | None:
        """Change one trait now and say so in the next reply; (old, new), or None if no
        trait has another value to change to."""
        ...
