"""Per-API-key limits in fixed one-minute windows, in Redis when configured (shared by every
replica), else counted by each process: requests per minute, counted as they arrive, and tokens
per minute (prompt and completion), added as each turn's choices end. A key whose window already
holds its tokens is refused until the window ends; the turn that crosses the limit is served
whole, as no one knows its size before it runs.

A key's own limits (`rpm_limit`, `tpm_limit`) replace the gateway's (RLPA_RATE_LIMIT_PER_MINUTE,
RLPA_RATE_LIMIT_TOKENS_PER_MINUTE); 0 is no limit.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from server import metrics
from server.auth.service import Principal
from server.errors import RateLimitError

logger = logging.getLogger(__name__)
_WINDOW_S = 60


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        redis_url: str | None,
        prefix: str,
        tokens_per_minute: int = 0,
    ) -> None:
        self.per_minute = per_minute
        self.tokens_per_minute = tokens_per_minute
        self._prefix = prefix
        # Connects on first use: a gateway whose keys have no limits never does.
        self._redis = (
            aioredis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            if redis_url
            else None
        )
        self._local: dict[str, tuple[int, int]] = {}

    def _requests_limit(self, principal: Principal) -> int:
        return self.per_minute if principal.rpm_limit is None else principal.rpm_limit

    def _tokens_limit(self, principal: Principal) -> int:
        return self.tokens_per_minute if principal.tpm_limit is None else principal.tpm_limit

    def limits_tokens(self, principal: Principal) -> bool:
        return self._tokens_limit(principal) > 0

    def _key(self, kind: str, principal: Principal, window: int) -> str:
        subject = str(principal.key_id) if principal.key_id is not None else "anonymous"
        return f"{self._prefix}{kind}:{subject}:{window}"

    async def check(self, principal: Principal) -> None:
        """Count the request; 429 past the key's requests per minute."""
        limit = self._requests_limit(principal)
        if limit <= 0:
            return
        window = int(time.time() // _WINDOW_S)
        count = await self._add(self._key("rl", principal, window), 1, window)
        if count > limit:
            metrics.RATE_LIMITED.labels("api_key").inc()
            raise RateLimitError(
                f"Rate limit of {limit} requests per minute reached for this API key.",
                retry_after=_rest_of_window(),
            )

    async def check_tokens(self, principal: Principal) -> None:
        """429 while the key's window holds its tokens per minute."""
        limit = self._tokens_limit(principal)
        if limit <= 0:
            return
        window = int(time.time() // _WINDOW_S)
        used = await self._add(self._key("tpm", principal, window), 0, window)
        if used >= limit:
            metrics.RATE_LIMITED.labels("tokens").inc()
            raise RateLimitError(
                f"Token limit of {limit} tokens per minute reached for this API key "
                f"({used} used in this minute).",
                retry_after=_rest_of_window(),
            )

    async def add_tokens(self, principal: Principal, tokens: int) -> None:
        """Count a turn's tokens in the key's current window."""
        if self._tokens_limit(principal) <= 0 or tokens <= 0:
            return
        window = int(time.time() // _WINDOW_S)
        await self._add(self._key("tpm", principal, window), tokens, window)

    async def _add(self, key: str, amount: int, window: int) -> int:
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incrby(key, amount)
                    pipe.expire(key, 2 * _WINDOW_S)
                    count, _ = await pipe.execute()
                return int(count)
            except Exception as exc:  # Redis down: fall back to this process's own count
                metrics.CACHE_ERRORS.inc()
                logger.debug("rate limit falls back to local counting: %s", exc)
        seen_window, count = self._local.get(key, (window, 0))
        count = count + amount if seen_window == window else amount
        self._local = {k: v for k, v in self._local.items() if v[0] == window}
        self._local[key] = (window, count)
        return count

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _rest_of_window() -> int:
    return max(1, _WINDOW_S - int(time.time()) % _WINDOW_S)
