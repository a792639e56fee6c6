"""Database engine, session factory and the declarative base shared by every model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from server.errors import DatabaseUnavailableError
from server.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware on every database: SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def utcnow() -> datetime:
    return datetime.now(UTC)


def dialect_insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite spell it alike)."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database_url, connect_args={"timeout": 30}, pool_pre_ping=False
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # A stopped or frozen server must fail requests fast, not hang them: the connect timeout
    # covers the whole handshake, command_timeout every statement seen from this side (a frozen
    # server never answers; asyncpg cancels the statement on the server too), statement_timeout
    # the server's own side, pool_timeout a pool whose connections are all stuck.
    timeout_ms = int(settings.db_statement_timeout_s * 1000)
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_statement_timeout_s,
    }
    if settings.db_pooler == "transaction":
        connect_args.update(_TRANSACTION_POOLER_ARGS)
    else:
        connect_args["server_settings"] = {"statement_timeout": str(timeout_ms)}
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args=connect_args,
    )
    if settings.db_pooler == "transaction":
        _time_out_each_transaction(engine, timeout_ms)
    _ping_when_idle(engine)
    return engine


def _unnamed() -> str:
    return ""


# Behind a transaction pooler consecutive transactions, and the two round trips of one
# statement outside a transaction, may each reach another server connection, and the pooler
# does not carry prepared statements across (PgBouncer before 1.21 never does). So no statement
# is named: asyncpg's cache is off (statement_cache_size=0), SQLAlchemy's too
# (prepared_statement_cache_size=0), and SQLAlchemy's prepare gets the empty name, the unnamed
# statement, which asyncpg parses again in the same message sequence as its execution when its
# cache is off (asyncpg#1041). Unique names (the prepared_statement_name_func with uuids in
# SQLAlchemy's asyncpg docs) are not enough: outside a transaction a statement prepared on one
# server connection is executed on another ("prepared statement ... does not exist"), and one
# prepared inside a transaction stays on its server connection until that closes.
_TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unnamed,
}


def _time_out_each_transaction(engine: AsyncEngine, timeout_ms: int) -> None:
    """The server-side statement timeout, set at the start of every transaction: a pooler
    refuses it as a startup parameter ("unsupported startup parameter"), and SET LOCAL ends
    with the transaction, so the server connection goes back to the pooler unchanged. A
    statement outside a transaction (`autocommit`) has command_timeout, which cancels it on the
    server as well."""
    statement = f"SET LOCAL statement_timeout = {timeout_ms}"

    def set_timeout(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql(statement)

    event.listen(engine.sync_engine, "begin", set_timeout)


# A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling for connections that sat idle, instead of pool_pre_ping:
    on asyncpg that pings with three round trips on every checkout (BEGIN, a ping, ROLLBACK;
    SQLAlchemy does it for pgbouncer, sqlalchemy#10226), more than a whole profile write. A
    connection used within the last PING_AFTER_IDLE_S is trusted; if the server went away in that
    window the statement fails as unavailable (503) and SQLAlchemy invalidates the whole pool,
    so the requests after it reconnect."""

    def stamp(_dbapi: Any, record: Any, *_args: Any) -> None:
        record.info["used_at"] = time.monotonic()

    def check(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("used_at", 0.0) <= PING_AFTER_IDLE_S:
            return
        try:
            dbapi.ping()
        except Exception as exc:  # the pool replaces the connection and tries again
            raise sa_exc.DisconnectionError() from exc
        record.info["used_at"] = time.monotonic()

    event.listen(engine.sync_engine, "connect", stamp)
    event.listen(engine.sync_engine, "checkin", stamp)
    event.listen(engine.sync_engine, "checkout", check)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached or did not answer in time,
    as opposed to errors in what was asked of it."""
    if isinstance(exc, sa_exc.DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
            or _unavailable_sqlstate(exc.orig)
        )
    return isinstance(exc, (sa_exc.TimeoutError, TimeoutError, ConnectionError, OSError))


# PostgreSQL's own "not now" answers: connection exceptions (08), shutting down or starting up
# (57P, e.g. 57P03 cannot_connect_now, which asyncpg raises as a plain DBAPIError), a statement
# cancelled by statement_timeout (57014), too many connections (53300).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "57014", "53300")


def _unavailable_sqlstate(orig: BaseException | None) -> bool:
    for error in (orig, getattr(orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A short unit of work: commit on success, roll back on any error.

    A database that is down or frozen surfaces as DatabaseUnavailableError (503, Retry-After).
    """
    try:
        async with sessionmaker() as session, session.begin():
            yield session
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailableError() from exc
        raise


@asynccontextmanager
async def autocommit(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncConnection]:
    """A connection whose statements commit by themselves: no BEGIN and COMMIT round trips, for
    a statement that is atomic on its own. Errors are mapped as in `transaction`."""
    try:
        async with sessionmaker() as session:
            options = {"isolation_level": "AUTOCOMMIT"}
            yield await session.connection(execution_options=options)
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailableError() from exc
        raise
