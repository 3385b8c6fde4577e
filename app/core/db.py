"""Database access: SQLAlchemy for most of the service, raw asyncpg on the hot paths.

Ingest and dispatch run on a plain asyncpg pool: on this stack a SQLAlchemy connection checkout
alone halves the requests a process serves (measured: 1,610 against 830 requests/s). Everything
else uses the ORM through one AsyncSession per request, committed before the response is sent.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_last_uuid7 = 0
_RAND_B = (1 << 62) - 1


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): index-friendly primary keys.

    Monotonic within the process (RFC 9562 §6.2, method 3): ids made in the same millisecond
    still sort in the order they were made, so items of one batch keep their order.
    """
    global _last_uuid7
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    if value <= _last_uuid7 and (_last_uuid7 >> 80) == (value >> 80):
        # Same millisecond: one more than the last in its low random bits (rand_b), carrying
        # into the high ones (rand_a) past the variant bits if they are all ones.
        rand_b = (_last_uuid7 & _RAND_B) + 1
        base = _last_uuid7 & ~_RAND_B
        value = base | rand_b if rand_b <= _RAND_B else base + (1 << 64)
    _last_uuid7 = value
    return uuid.UUID(int=value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://...) as a DSN asyncpg understands."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """The engine, the session factory and the raw pool of one process."""

    def __init__(self, engine: AsyncEngine, pool: asyncpg.Pool | None) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, *, pool_size: int) -> Database:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        # min_size=0: the service starts (and /readyz says why it is not ready) while the database
        # is down.
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url), min_size=0, max_size=pool_size, reset=_no_session_reset
        )
        return cls(engine, pool)

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        """A raw asyncpg connection for a hot path.

        json and jsonb travel as text both ways, as they do on a connection SQLAlchemy set up, so
        raw code behaves the same on either.
        """
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            # The pool's proxy forwards every Connection method.
            yield cast(asyncpg.Connection, conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self.engine.dispose()


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Raw code leaves no session state behind (no SET, LISTEN, cursors or advisory locks), so
    a connection goes back to the pool without asyncpg's default reset: one round trip less on
    every ingest. (An open transaction is still rolled back by the pool itself.)"""


class BoundDatabase(Database):
    """Every session and raw connection on one outer connection (tests: one transaction each).

    Sessions join it with savepoints, and raw code's `conn.transaction()` becomes a savepoint too,
    so whatever a test does is rolled back with the outer transaction.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection.engine, None)
        self.connection = connection
        self.sessionmaker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        raw = await self.connection.get_raw_connection()
        driver: Any = raw.driver_connection
        yield driver

    async def close(self) -> None:
        return None


async def session_raw(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session, for raw SQL inside the session's transaction."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    return cast(asyncpg.Connection, driver)


async def get_database(request: Request) -> Database:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns, before the answer is sent."""
    async with request.app.state.database.sessionmaker() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]
