"""The database layer: the connection budget, the timeouts every connection gets, raw SQL inside
a session, cancelled queries, and sessions beside raw code on a test's one connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.cases.sla import run_pass
from app.core.db import BoundDatabase, Database, asyncpg_dsn, session_sql
from tests.builders import auth, eventually, feedback_body, make_api_key, open_case


@pytest.fixture
async def small(database_url: str) -> AsyncIterator[Database]:
    """A real database of five connections, short timeouts."""
    real = await Database.connect(
        database_url, pool_size=5, statement_timeout=2.5, idle_in_transaction_timeout=7
    )
    try:
        yield real
    finally:
        await real.close()


async def test_one_setting_bounds_both_pools(small: Database) -> None:
    assert small.engine.pool.size() == 2  # type: ignore[attr-defined]
    assert small.engine.pool._max_overflow == 0  # type: ignore[attr-defined]
    assert small._pool is not None
    assert small._pool.get_max_size() == 3


async def test_every_connection_of_both_pools_has_the_timeouts(small: Database) -> None:
    async with small.raw() as conn:
        raw = (
            await conn.fetchval("SHOW statement_timeout"),
            await conn.fetchval("SHOW idle_in_transaction_session_timeout"),
        )
    async with small.sessionmaker() as session:
        orm = (
            await session.scalar(text("SHOW statement_timeout")),
            await session.scalar(text("SHOW idle_in_transaction_session_timeout")),
        )
    assert raw == orm == ("2500ms", "7s")


async def test_a_statement_past_the_timeout_is_stopped(small: Database) -> None:
    async with small.raw() as conn:
        with pytest.raises(Exception, match="statement timeout"):
            await conn.execute("SELECT pg_sleep(10)")
        assert await conn.fetchval("SELECT 1") == 1


async def test_raw_sql_in_a_session_is_part_of_its_transaction(committed: Database) -> None:
    insert = (
        "INSERT INTO team (key, name, first_response_minutes, resolution_minutes, is_default, "
        "created_at, updated_at) VALUES ($1, $2, 60, 600, false, now(), now()) RETURNING key"
    )
    async with committed.sessionmaker() as session:
        assert (await session_sql(session, insert, "rolled-back", "R")).scalar() == "rolled-back"
        await session.rollback()
    async with committed.sessionmaker() as session:
        await session_sql(session, insert, "kept", "K")
        await session.commit()
    async with committed.raw() as conn:
        keys = {r["key"] for r in await conn.fetch("SELECT key FROM team")}
    assert "rolled-back" not in keys
    assert "kept" in keys


async def _running(database_url: str, query: str) -> bool:
    # A connection of its own: one from the pool under test would queue behind the holders (the
    # raw pool's three are all held), and come back only once the sleeps it looks for are over.
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1",
                query,
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("pool", ["orm", "raw"])
async def test_a_query_cancelled_midway_leaves_no_busy_connection_in_its_pool(
    small: Database, database_url: str, pool: str
) -> None:
    """What a client that hangs up mid-request does to its task: its connection goes back to
    the pool, and the next one to take it must find it idle."""
    sleeper = f"SELECT pg_sleep(2) /* {pool} */"

    async def hold() -> None:
        if pool == "orm":
            async with small.sessionmaker() as session:
                await session.execute(text(sleeper))
        else:
            async with small.raw() as conn:
                await conn.execute(sleeper)

    tasks = [asyncio.create_task(hold()) for _ in range(3 if pool == "raw" else 2)]
    await eventually(lambda: _running(database_url, sleeper))
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(6):  # every connection of the pool, more than once
        if pool == "orm":
            async with small.sessionmaker() as session:
                assert await session.scalar(text("SELECT 1")) == 1
                await session.commit()
        else:
            async with small.raw() as conn, conn.transaction():
                assert await conn.fetchval("SELECT 1") == 1


async def test_requests_beside_the_sla_monitor_take_turns_on_a_test_connection(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    """Once seen as a 500 on GET /v1/cases ("another operation is in progress", at the session's
    commit) while the SLA monitor closed a backlog: on a test's one connection, raw code (the
    key lookup, ingest) ran in the middle of a session's statements. Now they take turns."""
    for n in range(12):
        case = await open_case(admin, customer={"external_id": f"cus_{n}"})
        resolved = await admin.post(
            f"/v1/cases/{case['id']}/resolve",
            json={"code": "fixed", "notify_customer": False},
            headers={"If-Match": f'"{case["version"]}"'},
        )
        assert resolved.status_code == 200, resolved.text
    reader = await make_api_key(database, "cases:read", "feedback:write")

    async def page() -> int:
        return (await admin.get("/v1/cases", headers=auth(reader))).status_code

    async def ingest(n: int) -> int:
        body = feedback_body(customer={"external_id": f"new_{n}"})
        return (await admin.post("/v1/feedback", json=body, headers=auth(reader))).status_code

    monitor = asyncio.create_task(run_pass(database.sessionmaker, autoclose_after=timedelta(0)))
    statuses = await asyncio.gather(*(page() for _ in range(10)), *(ingest(n) for n in range(10)))
    assert (await monitor).closed == 12
    assert statuses == [200] * 10 + [201] * 10
