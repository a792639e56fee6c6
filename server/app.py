"""The application factory. `app = create_app()` is the only import-time side effect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import admin_ui, errors, migrate, tracing
from server.auth.router import router as keys_router
from server.auth.service import Authenticator
from server.cache import create_cache
from server.chat.service import ChatService
from server.db import create_engine, create_sessionmaker
from server.deps import AppState, DocsAccessDep, MetricsAccessDep
from server.health import router as health_router
from server.middleware import BodyLimitMiddleware
from server.observability import ObservabilityMiddleware
from server.openai.router import router as openai_router
from server.profiles.me_router import router as me_router
from server.profiles.router import router as users_router
from server.profiles.service import ProfileService
from server.pseudonyms import Pseudonyms
from server.ratelimit import RateLimiter
from server.settings import Settings
from server.usage.router import router as usage_router
from server.usage.service import UsageMeter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from server.backends.base import ChatBackend

logger = logging.getLogger("server")


async def _check_schema(state: AppState) -> None:
    """Production never migrates implicitly, so say clearly when it has not been migrated, or
    has been migrated past what this release can serve (a rolling upgrade: server/migrate.py)."""
    async with state.engine.connect() as connection:
        await migrate.check_schema(connection)


def create_app(
    settings: Settings | None = None,
    backend: ChatBackend | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Build the gateway. Tests pass explicit settings and may pass a ready backend, or a tracer
    provider of their own (which traces as RLPA_OTLP_ENDPOINT would, and is theirs to shut)."""
    settings = settings or Settings()
    pseudonyms = Pseudonyms()  # keyed at start-up, from the settings or the database

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        provider = tracer_provider or tracing.create_provider(settings)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        cache = create_cache(settings.redis_url, settings.redis_key_prefix, settings.cache_ttl_s)
        limiter = RateLimiter(
            settings.rate_limit_per_minute,
            settings.redis_url,
            settings.redis_key_prefix,
            tokens_per_minute=settings.rate_limit_tokens_per_minute,
        )
        state = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            cache=cache,
            pseudonyms=pseudonyms,
            profiles=ProfileService(sessionmaker, cache, pseudonyms),
            auth=Authenticator(
                sessionmaker,
                cache_ttl_s=settings.auth_cache_ttl_s,
                cache_size=settings.auth_cache_size,
                failures_per_minute=settings.auth_failures_per_minute,
            ),
            limiter=limiter,
            usage=UsageMeter(
                sessionmaker,
                limiter,
                pseudonyms,
                flush_s=settings.usage_flush_s,
                tenant_labels=settings.metrics_tenants,
            ),
        )
        app.state.rlpa = state
        try:
            if settings.should_auto_migrate:
                await migrate.upgrade_engine(engine)
            await _check_schema(state)
            await pseudonyms.load(sessionmaker, settings.pseudonym_key)
            await state.auth.bootstrap(settings)
            state.usage.start()
            await _start_chat(state, backend, tracing.tracer(provider))
            yield
        finally:
            if state.chat is not None:
                await state.chat.aclose()
            if state.backend is not None and state.backend is not backend:
                await state.backend.aclose()
            await state.usage.aclose()  # writes the counts still held
            await state.limiter.aclose()
            await cache.aclose()
            await engine.dispose()
            if provider is not None and provider is not tracer_provider:
                await asyncio.to_thread(provider.shutdown)  # exports the spans still batched

    app = FastAPI(
        title="rlpa",
        version="0.1.0",
        description="OpenAI-compatible chat that learns who it talks to (RLPA).",
        lifespan=lifespan,
        # Served by _operator_router instead, behind an admin key off loopback.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body limit, so that a 413 is counted and carries its request id too.
    app.add_middleware(ObservabilityMiddleware, pseudonyms=pseudonyms)
    if tracer_provider is not None or settings.otlp_endpoint:
        app.add_middleware(tracing.TraceContextMiddleware)
    app.include_router(health_router)
    app.include_router(users_router)
    app.include_router(keys_router)
    app.include_router(usage_router)
    app.include_router(openai_router)
    app.include_router(me_router)
    app.include_router(_operator_router(app))
    app.include_router(admin_ui.create_router(admin_ui=settings.admin_ui))
    return app


def _operator_router(app: FastAPI) -> APIRouter:
    """/metrics, /docs, /redoc and /openapi.json: open on loopback, else an admin key (or
    RLPA_METRICS_PUBLIC / RLPA_DOCS_PUBLIC).

    /docs (and /redoc, its old name) is served by the gateway itself, no CDN: a page that
    renders /openapi.json. A browser cannot send the key on a page load: off loopback an operator
    reads the reference in the admin page's API tab (which sends it), or sets
    RLPA_DOCS_PUBLIC=true.
    """
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics(_access: MetricsAccessDep) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/openapi.json")
    async def openapi(_access: DocsAccessDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get("/docs")
    @router.get("/redoc")
    async def docs(request: Request, _access: DocsAccessDep) -> Response:
        return admin_ui.docs_page(request, f"{app.title} API reference")

    return router


async def _start_chat(
    state: AppState, backend: ChatBackend | None, tracer: Tracer | None = None
) -> None:
    if backend is None:
        from server.backends import create_backend

        backend = create_backend(state.settings)
        await backend.start()
    from server.backends import contract_version

    state.backend = backend
    settings = state.settings
    write_behind = settings.profile_write_behind
    if write_behind and not state.cache.shared and not settings.is_sqlite:
        # Replicas on one PostgreSQL could answer a user's next turn before this one's write
        # commits, and apply them out of order: only a shared cache can hold the order.
        logger.warning(
            "RLPA_PROFILE_WRITE_BEHIND is ignored: across replicas it needs RLPA_REDIS_URL; "
            "every turn waits for its profile write"
        )
        write_behind = False
    state.chat = ChatService(
        backend,
        state.profiles,
        contract_version=contract_version(settings),
        write_behind=write_behind,
        # A write that has not ended by then failed (every database timeout has passed).
        write_wait_s=(
            settings.db_connect_timeout_s
            + settings.db_pool_timeout_s
            + settings.db_statement_timeout_s
        ),
        default_max_tokens=settings.default_max_tokens,
        profile_max_tokens=settings.profile_max_tokens,
        memory_off_suffix=settings.task_model_suffix,
        usage=state.usage,
        tracer=tracer,
        client_tasks=settings.client_task_detection,
        memory_commands=settings.memory_commands,
        trait_words=settings.trait_words,
    )
    logger.info("serving RLPA contract v%d", state.chat.contract_version)
