"""Per-API-key request rate limit: a fixed one-minute window, in Redis when configured."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from server import metrics
from server.auth.service import Principal
from server.errors import RateLimitError

logger = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None, prefix: str) -> None:
        self.per_minute = per_minute
        self._prefix = prefix
        self._redis = (
            aioredis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            if redis_url and per_minute > 0
            else None
        )
        self._local: dict[str, tuple[int, int]] = {}

    async def check(self, principal: Principal) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        subject = str(principal.key_id) if principal.key_id is not None else "anonymous"
        count = await self._count(f"{self._prefix}rl:{subject}:{window}", window)
        if count > self.per_minute:
            metrics.RATE_LIMITED.labels("api_key").inc()
            raise RateLimitError(
                f"Rate limit of {self.per_minute} requests per minute reached for this API key.",
                retry_after=max(1, 60 - int(time.time()) % 60),
            )

    async def _count(self, key: str, window: int) -> int:
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, 120)
                    count, _ = await pipe.execute()
                return int(count)
            except Exception as exc:  # Redis down: fall back to this process's own count
                metrics.CACHE_ERRORS.inc()
                logger.debug("rate limit falls back to local counting: %s", exc)
        seen_window, count = self._local.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        self._local = {k: v for k, v in self._local.items() if v[0] == window}
        self._local[key] = (window, count)
        return count

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
