"""How far behind the dispatcher is: the outbox's depth and the age of its oldest due message.

Read at scrape time, so both stay cheap on an outbox of millions: one probe of the due index
per endpoint for the oldest, and a count capped at `DEPTH_CAP` (an index-only scan of the
pending messages), all under a statement timeout of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

DEPTH_CAP = 1_000_000
TIMEOUT_MS = 1000

_BACKLOG = f"""
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM outbox_message WHERE status = 'pending' LIMIT {DEPTH_CAP}
    ) pending) AS depth,
    (SELECT min(due.next_attempt_at) FROM webhook_endpoint e CROSS JOIN LATERAL (
        SELECT m.next_attempt_at FROM outbox_message m
        WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.next_attempt_at <= now()
        ORDER BY m.next_attempt_at LIMIT 1
    ) due) AS oldest_due,
    now() AS now
"""


@dataclass(frozen=True)
class Backlog:
    # Pending messages (due now or later), at most DEPTH_CAP.
    depth: int
    # Seconds the oldest message due now has waited past its due time; 0 when none is due.
    oldest_due_age_seconds: float


async def outbox_backlog(conn: asyncpg.Connection) -> Backlog:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = {TIMEOUT_MS}")
        row = await conn.fetchrow(_BACKLOG)
    assert row is not None
    oldest: datetime | None = row["oldest_due"]
    age = (row["now"] - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(depth=row["depth"], oldest_due_age_seconds=max(0.0, age))
