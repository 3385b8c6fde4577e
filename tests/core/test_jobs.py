"""Background jobs: one process at a time per job, by a lease; outbox retention in batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from app.core.db import Database, utcnow
from app.core.jobs import Lease, LeaseLost, run_exclusively
from app.notifications import retention
from app.notifications.retention import delete_delivered


async def test_a_job_runs_in_one_process_at_a_time(committed: Database) -> None:
    first, second = Lease(committed, "job"), Lease(committed, "job")
    started, finish = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def work(lease: Lease) -> None:
        runs.append(lease.holder)
        started.set()
        await finish.wait()

    running = asyncio.create_task(run_exclusively(first, work))
    await started.wait()
    assert await run_exclusively(second, work) is False
    finish.set()
    assert await running is True
    # Handed back at the end of the pass: the next pass may run anywhere.
    assert await run_exclusively(second, work) is True
    assert runs == [first.holder, second.holder]


async def test_a_lease_that_ran_out_is_taken_over_and_its_holder_stops(
    committed: Database,
) -> None:
    dead, alive = Lease(committed, "job"), Lease(committed, "job")
    assert await dead.take()
    assert not await alive.take()
    async with committed.raw() as conn:  # its holder died a lease ago
        await conn.execute("UPDATE job_lease SET expires_at = now() - interval '1 second'")
    assert await alive.take()
    with pytest.raises(LeaseLost):
        await dead.renew()


async def test_retention_deletes_old_delivered_messages_and_their_attempts_in_batches(
    committed: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=31), now - timedelta(days=1)
    cutoff = now - timedelta(days=30)
    endpoint = uuid.uuid4()
    rows = (
        [("delivered", old, old)] * 7  # to delete
        + [("delivered", old, recent)]  # delivered late: kept
        + [("delivered", recent, recent)]
        + [("failed", old, None), ("pending", old, None)]
    )
    async with committed.raw() as conn:
        await conn.execute(
            "INSERT INTO webhook_endpoint (id, url, event_types, enabled, secret, created_at, "
            "updated_at) VALUES ($1, 'http://127.0.0.1:9/', '{*}', true, 'whsec_x', $2, $2)",
            endpoint,
            now,
        )
        ids = []
        for status, created_at, delivered_at in rows:
            message = uuid.uuid4()
            ids.append(message)
            await conn.execute(
                "INSERT INTO outbox_message (id, endpoint_id, event_type, body, status, attempts, "
                "tries, next_attempt_at, created_at, delivered_at) "
                "VALUES ($1, $2, 'case.closed', '{}', $3, 1, 1, $4, $4, $5)",
                message,
                endpoint,
                status,
                created_at,
                delivered_at,
            )
            await conn.execute(
                "INSERT INTO delivery_attempt (id, message_id, at, status_code, duration_ms) "
                "VALUES ($1, $2, $3, 200, 5)",
                uuid.uuid4(),
                message,
                created_at,
            )
    renewals = 0

    async def between() -> None:
        nonlocal renewals
        renewals += 1

    monkeypatch.setattr(retention, "BATCH", 3)  # small batches, to see several
    deleted = await delete_delivered(committed, cutoff, between=between)
    assert deleted == 7
    assert renewals == 2  # after the two full batches of three
    async with committed.raw() as conn:
        left = await conn.fetchval("SELECT count(*) FROM outbox_message")
        attempts = await conn.fetchval("SELECT count(*) FROM delivery_attempt")
    assert left == attempts == len(rows) - 7
