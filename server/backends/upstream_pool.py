"""Which upstream serves the next request: the least busy of the healthy ones."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

GrammarDialect = Literal["vllm", "vllm-guided", "llamacpp", "none"]


@dataclass(eq=False)
class Upstream:
    url: str  # base URL ending in /v1
    in_flight: int = 0
    down_until: float = 0.0  # time.monotonic() before which it is left alone
    # How this upstream takes a grammar, once asked (RLPA_UPSTREAM_GRAMMAR=auto); None: not yet.
    dialect: GrammarDialect | None = None

    @property
    def host(self) -> str:
        """host:port, the upstream's name in metrics (a URL may hold credentials)."""
        return urlsplit(self.url).netloc.rpartition("@")[2]

    @property
    def root(self) -> str:
        """The server's root, where vLLM and llama.cpp serve their non-OpenAI routes."""
        return self.url.removesuffix("/v1")

    def is_healthy(self, now: float) -> bool:
        return now >= self.down_until


class UpstreamPool:
    """Least-busy routing with a short cooldown for upstreams that refused or timed out.

    Counts are per gateway process, which is enough: each replica spreads its own load, and an
    upstream that is slow for everyone is slow for every replica's counts too.
    """

    def __init__(self, urls: list[str], cooldown_s: float) -> None:
        if not urls:
            raise ValueError("an upstream pool needs at least one URL")
        self.upstreams = [Upstream(url.rstrip("/")) for url in urls]
        self._cooldown_s = cooldown_s
        self._turns = itertools.count()

    def pick(self, tried: set[str] | frozenset[str] = frozenset()) -> Upstream:
        """The upstream for the next attempt; the caller counts it in flight at once.

        Prefers upstreams this request has not tried yet, then healthy ones; equally busy ones
        take turns so that sequential requests spread too. When every upstream is cooling down
        one is tried anyway: refusing outright would turn a brief outage into a longer one.
        """
        now = time.monotonic()
        fresh = [up for up in self.upstreams if up.url not in tried] or self.upstreams
        candidates = [up for up in fresh if up.is_healthy(now)] or fresh
        start = next(self._turns) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda up: up.in_flight)

    def by_preference(self) -> list[Upstream]:
        """Every upstream, healthy and idle ones first (for model listing and health checks)."""
        now = time.monotonic()
        return sorted(self.upstreams, key=lambda up: (not up.is_healthy(now), up.in_flight))

    def mark_down(self, upstream: Upstream) -> None:
        upstream.down_until = time.monotonic() + self._cooldown_s
        # What answers at this address after an outage may be another server: ask again.
        upstream.dialect = None

    def mark_up(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0
