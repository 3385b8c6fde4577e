"""Outbox retention: delivered messages, with their attempts, deleted once old enough.

In batches of `BATCH` messages, each its own short transaction, so deleting a month of
history never holds locks or a transaction for long. A message is old enough when it was both
written and delivered before the cut-off; the (endpoint_id, created_at) index finds the
candidates. Failed and pending messages stay: someone may still retry or recover them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg

from app.core.db import Database, in_batches

BATCH = 5000

# delivery_attempt rows go with their message (ON DELETE CASCADE).
_DELETE = """
DELETE FROM outbox_message WHERE id IN (
    SELECT m.id FROM webhook_endpoint e CROSS JOIN LATERAL (
        SELECT id FROM outbox_message
        WHERE endpoint_id = e.id AND created_at < $1
            AND status = 'delivered' AND delivered_at < $1
        LIMIT $2
    ) m
    LIMIT $2
)
"""


async def delete_delivered(
    database: Database,
    before: datetime,
    *,
    between: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Delete messages delivered before `before`, a batch at a time; answer how many."""

    async def step(conn: asyncpg.Connection) -> int:
        status = await conn.execute(_DELETE, before, BATCH)
        return int(status.split()[-1])

    return await in_batches(database, step, BATCH, between)
