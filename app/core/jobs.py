"""Background jobs that one process at a time runs, whatever the number of processes.

Each job holds a lease: a row of `job_lease` naming the process that holds it and until when.
A process takes the lease only when it is free or ran out, renews it between batches, and
hands it back at the end of its pass; a process that dies loses it when it runs out. Plain
short transactions (no advisory lock held on a session), so it also works through PgBouncer
in transaction mode, and it holds no connection between statements.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Database
from app.core.metrics import count_job

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60.0


class JobLease(Base):
    __tablename__ = "job_lease"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Taken when free, run out, or already ours (a renewal).
_TAKE = """
INSERT INTO job_lease (name, holder, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE job_lease.expires_at <= now() OR job_lease.holder = EXCLUDED.holder
RETURNING holder
"""
_RELEASE = "UPDATE job_lease SET expires_at = now() WHERE name = $1 AND holder = $2"


class LeaseLost(Exception):
    """Another process holds the lease now (ours ran out): stop, it carries on."""


class Lease:
    def __init__(self, database: Database, name: str, seconds: float = LEASE_SECONDS) -> None:
        self.database = database
        self.name = name
        self.seconds = seconds
        # Unique per Lease object: two runners in one process exclude each other too.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def take(self) -> bool:
        async with self.database.raw() as conn:
            return await conn.fetchval(_TAKE, self.name, self.holder, self.seconds) is not None

    async def renew(self) -> None:
        if not await self.take():
            raise LeaseLost(self.name)

    async def release(self) -> None:
        async with self.database.raw() as conn:
            await conn.execute(_RELEASE, self.name, self.holder)


async def run_exclusively(lease: Lease, work: Callable[[Lease], Awaitable[object]]) -> bool:
    """One pass of a job if no other process is running it; answers whether it ran. A failure
    is logged (the next pass tries again), never raised: one job's trouble stops no other."""
    try:
        if not await lease.take():
            count_job(lease.name, "skipped")
            return False
    except Exception:
        logger.exception("taking the lease of job %s failed; trying next time", lease.name)
        count_job(lease.name, "failed")
        return False
    outcome = "failed"
    try:
        await work(lease)
        outcome = "ran"
    except LeaseLost:
        logger.warning("job %s lost its lease to another process; it carries on", lease.name)
    except Exception:
        logger.exception("job %s failed; retrying next interval", lease.name)
    finally:
        try:
            await lease.release()
        except Exception:
            logger.warning("releasing the lease of job %s failed; it runs out", lease.name)
    count_job(lease.name, outcome)
    return outcome == "ran"
