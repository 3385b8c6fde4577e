"""Database access: SQLAlchemy for most of the service, raw asyncpg on the hot paths.

Ingest and dispatch run on a plain asyncpg pool: on this stack a SQLAlchemy connection checkout
alone halves the requests a process serves (measured: 1,610 against 830 requests/s). Everything
else uses the ORM through one AsyncSession per request. Either way a request has one
transaction, which its dependency (`get_session`, `get_raw`) commits before the response is
sent; services never commit.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, Self, TypeVar, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import CursorResult, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.core.errors import NotFound

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


STATEMENT_TIMEOUT_SECONDS = 30.0
IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = 60.0


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_last_uuid7 = 0
# `closeloop import` makes ids in two threads: one at a time keeps them unique and ordered.
_uuid7_lock = threading.Lock()
_RAND_B = (1 << 62) - 1


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): index-friendly primary keys.

    Monotonic within the process (RFC 9562 §6.2, method 3): ids made in the same millisecond
    still sort in the order they were made, so items of one batch keep their order.
    Ids made inside SQL (INSERT ... SELECT) come from its SQL twin `closeloop_uuid7()`
    (migration uuid7_function): the same layout, millisecond-ordered.
    """
    global _last_uuid7
    with _uuid7_lock:
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
    async def connect(
        cls,
        url: str,
        *,
        pool_size: int,
        statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
        idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
        statement_cache: bool = True,
    ) -> Database:
        """Both pools, which together open at most `pool_size` connections (at least 2): the raw
        pool, which the hot paths use, gets the odd one. Every connection of either is made with
        the two timeouts (seconds; 0 = none), so no statement and no forgotten transaction
        holds a connection, or its locks, for longer."""
        orm_size = max(1, pool_size // 2)
        raw_size = max(1, pool_size - orm_size)
        server_settings = {
            "statement_timeout": str(round(statement_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(round(idle_in_transaction_timeout * 1000)),
        }
        connect_args: dict[str, Any] = {"server_settings": server_settings}
        raw_options: dict[str, Any] = {"server_settings": server_settings}
        if not statement_cache:
            connect_args, raw_options = pooled_connect_args(), {"statement_cache_size": 0}
        engine = create_async_engine(
            url,
            pool_size=orm_size,
            max_overflow=0,
            # Values never reach a log or an error message: they are customers' data.
            hide_parameters=True,
            connect_args=connect_args,
        )
        # min_size=0: the service starts (and /readyz says why it is not ready) while the database
        # is down.
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=0,
            max_size=raw_size,
            reset=_no_session_reset,
            **raw_options,
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


class Updated(Protocol):
    updated_at: datetime


def apply_patch(row: Updated, changes: Mapping[str, Any], *, clears: Collection[str] = ()) -> None:
    """Set a PATCH's given fields on its row and mark the row updated. A null leaves a field as
    it is, except in the fields of `clears`, where null clears it."""
    for name, value in changes.items():
        if value is not None or name in clears:
            setattr(row, name, value)
    row.updated_at = utcnow()


async def in_batches(
    database: Database,
    step: Callable[[asyncpg.Connection], Awaitable[int]],
    batch: int,
    between: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Run `step` (one batch of a long chore, answering how many rows it took) a short
    transaction at a time until a batch comes back short; answer the total. `between` runs
    between batches (a worker lets its other jobs take their turn there)."""
    total = 0
    while True:
        async with database.raw() as conn, conn.transaction():
            count = await step(conn)
        total += count
        if count < batch:
            return total
        if between is not None:
            await between()


def pooled_connect_args() -> dict[str, Any]:
    """asyncpg behind PgBouncer in transaction mode, where each transaction may run on another
    server connection: no statement cache (a statement prepared on one connection is unknown
    on the next), SQLAlchemy's statements named uniquely (it prepares every statement, and two
    clients' `__asyncpg_stmt_1__` would meet on one server connection), and no session
    settings (PgBouncer refuses startup parameters it does not know: set the timeouts on the
    role instead, `ALTER ROLE ... SET statement_timeout = ...`). The service's engine and
    pool use it, and so does the migrations' engine (migrations/env.py)."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: f"__closeloop_{uuid.uuid4().hex}__",
    }


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Raw code leaves no session state behind (no SET, LISTEN, cursors or advisory locks), so
    a connection goes back to the pool without asyncpg's default reset: one round trip less on
    every ingest. (An open transaction is still rolled back by the pool itself.)"""


class _TaskLock:
    """A lock that the task holding it may take again (a session that opens a raw block)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if self._owner is not task:
            await self._lock.acquire()
            self._owner = task
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None
            self._lock.release()


class _TurnTakingSession(AsyncSession):
    """A session that holds its BoundDatabase's turn from `async with` to its end."""

    turn: _TaskLock

    async def __aenter__(self) -> Self:
        await self.turn.acquire()
        return self

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        finally:
            self.turn.release()


class BoundDatabase(Database):
    """Every session and raw connection on one outer connection (tests: one transaction each).

    Sessions join it with savepoints, and raw code's `conn.transaction()` becomes a savepoint too,
    so whatever a test does is rolled back with the outer transaction. One connection runs one
    thing at a time, and savepoints nest, so sessions and raw blocks take turns, each whole
    (a test that runs requests beside the SLA monitor gets them one after the other): two of
    them at once would interleave their savepoints and their statements on one connection
    ("another operation is in progress").
    """

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection.engine, None)
        self.connection = connection
        self._turn = _TaskLock()
        self._begun = False
        session_class = type("BoundSession", (_TurnTakingSession,), {"turn": self._turn})
        self.sessionmaker = async_sessionmaker(
            bind=connection,
            class_=session_class,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        await self._turn.acquire()
        try:
            if not self._begun:
                # SQLAlchemy's driver adapter sends the outer BEGIN with the first statement it
                # runs: before that, the driver's own statements would commit on their own.
                await self.connection.exec_driver_sql("SELECT 1")
                self._begun = True
            raw = await self.connection.get_raw_connection()
            driver: Any = raw.driver_connection
            yield driver
        finally:
            self._turn.release()

    async def close(self) -> None:
        return None


async def session_sql(session: AsyncSession, sql: str, *args: Any) -> CursorResult[Any]:
    """Hand-written SQL ($1, $2... as on a raw connection) in the session's transaction.

    It goes through SQLAlchemy's driver adapter, which begins the session's transaction first
    and runs one statement at a time on the connection. An asyncpg connection taken from under
    a session would do neither: its statements would commit on their own before the session's
    BEGIN, and could run while the session's own statement or commit is in flight.
    """
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, args)


async def get_or_404(
    session: AsyncSession, model: type[T], key: Any, missing: NotFound, **options: Any
) -> T:
    """The row of `model` with this primary key (`options` go to `session.get`), else `missing`."""
    row = await session.get(model, key, **options)
    if row is None:
        raise missing
    return row


async def get_database(request: Request) -> Database:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    database: Database = request.app.state.database
    return database


@asynccontextmanager
async def session_transaction(database: Database) -> AsyncIterator[AsyncSession]:
    """One session, committed when the block ends; closing it rolls back if the block raises."""
    async with database.sessionmaker() as session:
        yield session
        await session.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns, before the answer is sent."""
    async with session_transaction(request.app.state.database) as session:
        yield session


class RawTransaction:
    """A request's raw connection and its one transaction, both taken on first use (as a
    session begins its transaction on its first statement); the dependency commits it."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._stack = AsyncExitStack()
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None

    async def connection(self) -> asyncpg.Connection:
        if self._conn is None:
            conn = await self._stack.enter_async_context(self._database.raw())
            transaction = conn.transaction()
            await transaction.start()
            self._conn, self._transaction = conn, transaction
        return self._conn

    async def commit(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.commit()

    async def close(self) -> None:
        """Roll back what was not committed and give the connections back."""
        try:
            if self._transaction is not None:
                transaction, self._transaction = self._transaction, None
                await transaction.rollback()
        finally:
            self._conn = None
            await self._stack.aclose()


@asynccontextmanager
async def raw_transaction(database: Database) -> AsyncIterator[RawTransaction]:
    """One raw transaction, committed when the block ends, rolled back if it raises."""
    raw = RawTransaction(database)
    try:
        yield raw
        await raw.commit()
    finally:
        await raw.close()


async def get_raw(request: Request) -> AsyncIterator[RawTransaction]:
    """The raw connection's counterpart of get_session: one transaction per request, committed
    when the route returns, before the answer is sent; rolled back if the route raises."""
    async with raw_transaction(request.app.state.database) as raw:
        yield raw


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RawDep = Annotated[RawTransaction, Depends(get_raw, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]
