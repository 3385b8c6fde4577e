"""Test set-up: one embedded PostgreSQL per run, migrations applied once, a transaction per test.

Each test gets an app bound to a connection inside a transaction that is rolled back at the end,
so tests see only their own rows and leave nothing behind. Tests that need real concurrency or
real processes ask for `committing_database_url` instead and clean up after themselves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app import models as _every_table  # noqa: F401 - all on the metadata, for _TABLES
from app.core.config import Settings
from app.core.db import Base, BoundDatabase, Database
from app.core.embedded import EmbeddedPostgres
from app.core.migrations import upgrade
from app.main import create_app
from app.notifications.dispatcher import Dispatcher
from tests.builders import make_api_key
from tests.receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parents[1]
# Durability is not under test here; speed is. (A crash of the test server loses a test run.)
FAST_SERVER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(ROOT / ".pytest-pg", server_options=FAST_SERVER)
    server.acquire()
    yield server
    server.release()


@pytest.fixture(scope="session")
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"closeloop_test_{os.getpid()}"
    url = pg_server.create_database(name, drop_first=True)
    upgrade(url)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        await transaction.rollback()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, ingest_rate_limit_per_minute=0, access_log=False)


@pytest.fixture
def database(connection: AsyncConnection) -> BoundDatabase:
    return BoundDatabase(connection)


@pytest.fixture
def app(settings: Settings, database: BoundDatabase) -> FastAPI:
    return create_app(settings, database)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def admin_key(database: BoundDatabase) -> str:
    return await make_api_key(database, "admin")


@pytest.fixture
async def admin(client: httpx.AsyncClient, admin_key: str) -> httpx.AsyncClient:
    """The test client, authenticated with an admin key."""
    client.headers["Authorization"] = f"Bearer {admin_key}"
    return client


@pytest.fixture
async def writer(client: httpx.AsyncClient, database: BoundDatabase) -> httpx.AsyncClient:
    """The test client, authenticated with a key that may send and read feedback."""
    key = await make_api_key(database, "feedback:write", "feedback:read")
    client.headers["Authorization"] = f"Bearer {key}"
    return client


# Every table that tests with real commits write to, emptied after each of them.
# Every table, from the models (a new room's tables are not forgotten: a connector a committed
# test left behind once broke the tests after it), but the one row a migration seeds.
_TABLES = ", ".join(
    sorted(t.name for t in Base.metadata.sorted_tables if t.name != "routing_generation")
)


@pytest.fixture
async def committed(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    """A real database with a real pool, for tests of concurrency and of other processes.

    What such a test writes is committed, so it is truncated afterwards.
    """
    real = await Database.connect(database_url, pool_size=20)
    try:
        yield real
    finally:
        async with real.raw() as conn:
            await conn.execute(f"TRUNCATE {_TABLES} CASCADE")
        await real.close()


@pytest.fixture
async def committed_client(
    committed: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app that uses the committed database, with an admin key."""
    key = await make_api_key(committed, "admin", name="admin")
    app = create_app(settings, committed)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (tests/receiver.py)."""
    async with running_receiver() as receiver:
        yield receiver


@pytest.fixture
async def dispatcher(committed: Database, settings: Settings) -> AsyncIterator[None]:
    """A webhook dispatcher running on the committed database for the length of the test."""
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(committed, settings).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, 30)
