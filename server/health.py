"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server.deps import AppState, StateDep

router = APIRouter(tags=["health"])

# Each check gets this long, all of them together: /ready answers within 2 s whatever hangs.
_CHECK_TIMEOUT_S = 1.5


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _database(state: AppState) -> bool:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


async def _check(probe: Awaitable[bool]) -> str | None:
    """None when the probe answers yes, else why not."""
    try:
        ok = await asyncio.wait_for(probe, _CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT_S} s"
    except Exception as exc:
        return f"unreachable ({exc.__class__.__name__})"
    return None if ok else "unhealthy"


# Checks whose failure leaves the replica serving, only slower: Redis down means every profile
# read goes to the database (README, "When something fails"). A readiness probe that failed on
# them would take every replica out of service at once for an outage the chats survive.
DEGRADING = frozenset({"cache"})


@router.get("/ready")
async def ready(state: StateDep) -> JSONResponse:
    """Ready (200) while the database and the model backend answer (within 2 s, together);
    `degraded`, still 200, while only the cache does not."""
    probes: dict[str, Awaitable[bool]] = {
        "database": _database(state),
        "cache": state.cache.ping(),
    }
    if state.backend is not None:
        probes["backend"] = state.backend.health()
    reasons = await asyncio.gather(*(_check(probe) for probe in probes.values()))
    failures = {name: reason for name, reason in zip(probes, reasons, strict=True) if reason}
    checks = {name: name not in failures for name in probes}
    fatal = failures.keys() - DEGRADING
    status = "unavailable" if fatal else "degraded" if failures else "ready"
    body: dict[str, object] = {"status": status, "checks": checks}
    if failures:
        body["reasons"] = failures
    return JSONResponse(body, status_code=503 if fatal else 200)
