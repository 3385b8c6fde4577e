"""The dispatcher: sends outbox messages, signed, retried, never holding a transaction open.

A loop claims due messages in one short statement (`FOR UPDATE SKIP LOCKED`, a few per
endpoint) and leases them by moving their due time past the end of the lease; each message is
then sent by its own task, at most `webhook_endpoint_concurrency` at once to one endpoint, so
a slow or dead endpoint holds only its own slots. Results are written back in batches, each in
a short transaction, and only by the holder of the lease. A dispatcher that dies leaves its
messages leased; they fall due again when the lease ends. Any number of dispatchers may run
side by side.

Whatever goes wrong while sending (an answer that breaks the HTTP parser, a header nobody can
read, a secret that cannot be opened, a bug) becomes the attempt's error and is retried on the
schedule: a message is never sent again without an attempt on record. Recording retries a
failed batch for a moment, then writes the outcomes one by one, so one that the database
refuses holds up no other.

Sending one message (the signed request, the SSRF guard, the connection slots) is
app/notifications/transport.py; this module is the loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg
import httpx

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.metrics import count_deliveries
from app.notifications.transport import Claimed, Outcome, Transport

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
RECORD_BATCH = 200
RECORD_EVERY = 0.02
SLOW_FAILURE_FLOOR = 60.0
JITTER = 0.2
# A batch of outcomes that could not be recorded is tried again after each of these (seconds).
RECORD_RETRY_DELAYS = (0.1, 0.5, 2.0)
# How often previous secrets whose grace period has ended are deleted.
SECRET_SWEEP_SECONDS = 60.0

_CLAIM = """
WITH due AS (
    SELECT m.id FROM webhook_endpoint e
    CROSS JOIN LATERAL (
        SELECT id FROM outbox_message m
        WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.next_attempt_at <= now()
        ORDER BY m.next_attempt_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) m
    WHERE e.enabled AND NOT (e.id = ANY($2::uuid[]))
    LIMIT $3
)
UPDATE outbox_message m
SET next_attempt_at = now() + make_interval(secs => $4), lease_token = $5
FROM due, webhook_endpoint e
WHERE m.id = due.id AND e.id = m.endpoint_id
RETURNING m.id, m.endpoint_id, m.body, m.tries, e.url, e.secret, e.previous_secret,
    e.previous_secret_expires_at
"""

# SKIP LOCKED: an endpoint being changed, or written by another dispatcher's recording, is
# left for the next sweep instead of waited for.
_FORGET_EXPIRED_SECRETS = """
UPDATE webhook_endpoint SET previous_secret = NULL, previous_secret_expires_at = NULL
WHERE id IN (
    SELECT id FROM webhook_endpoint WHERE previous_secret_expires_at <= $1
    FOR UPDATE SKIP LOCKED
)
"""

_RECORD = """
WITH r AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[],
        $6::int[], $7::int[], $8::text[], $9::text[]
    ) AS r(message_id, lease_token, status, next_attempt_at, at, status_code, duration_ms,
           excerpt, error)
),
attempts AS (
    INSERT INTO delivery_attempt (id, message_id, at, status_code, duration_ms,
        response_excerpt, error)
    SELECT closeloop_uuid7(), r.message_id, r.at, r.status_code, r.duration_ms, r.excerpt,
        r.error
    FROM r JOIN outbox_message m ON m.id = r.message_id
)
UPDATE outbox_message m SET
    status = r.status,
    attempts = m.attempts + 1,
    tries = m.tries + 1,
    next_attempt_at = coalesce(r.next_attempt_at, m.next_attempt_at),
    last_error = r.error,
    delivered_at = CASE WHEN r.status = 'delivered' THEN r.at END,
    failed_at = CASE WHEN r.status = 'failed' THEN r.at END,
    lease_token = NULL
FROM r
WHERE m.id = r.message_id AND m.lease_token = r.lease_token
"""


def next_attempt(outcome: Outcome, delays: list[float]) -> datetime | None:
    """When to try again after this failure (counted from the attempt's end, whenever it is
    recorded); None when the schedule is spent."""
    tries = outcome.message.tries + 1
    if tries >= len(delays):
        return None
    delay = delays[tries] * random.uniform(1 - JITTER, 1 + JITTER)
    if outcome.slow:
        delay = max(delay, SLOW_FAILURE_FLOOR)
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    ended = outcome.at + timedelta(milliseconds=outcome.duration_ms)
    return ended + timedelta(seconds=delay)


class Dispatcher:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.delays = settings.retry_delays
        self.per_endpoint = settings.webhook_endpoint_concurrency
        self.capacity = settings.webhook_concurrency
        # Long enough to wait for a slot at a busy endpoint (we only claim for endpoints with a
        # free slot, so at most one timeout), to time out there, and to record the outcome.
        self.lease_seconds = 2 * settings.webhook_timeout_seconds + 5
        self.transport = Transport(settings, client=client)
        self.inflight: dict[uuid.UUID, int] = defaultdict(int)
        # Each endpoint's free connection slots; taking one is the per-endpoint limit.
        self.slots: dict[uuid.UUID, asyncio.Queue[int]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.wake = asyncio.Event()
        # Set once the loop ends: the recorder then drains what is left and stops.
        self.stopping = asyncio.Event()

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, conn: asyncpg.Connection, limit: int) -> list[Claimed]:
        saturated = [e for e, n in self.inflight.items() if n >= self.per_endpoint]
        token = uuid.uuid4()
        rows = await conn.fetch(
            _CLAIM, self.per_endpoint, saturated, limit, self.lease_seconds, token
        )
        now = utcnow()
        claimed = []
        for row in rows:
            expires = row["previous_secret_expires_at"]
            in_grace = expires is not None and expires > now
            claimed.append(
                Claimed(
                    id=row["id"],
                    endpoint_id=row["endpoint_id"],
                    body=row["body"],
                    tries=row["tries"],
                    url=row["url"],
                    secret=row["secret"],
                    previous_secret=row["previous_secret"] if in_grace else None,
                    lease_token=token,
                )
            )
        return claimed

    async def forget_expired_secrets(self, now: datetime) -> int:
        """Delete the previous secrets whose grace period ended by `now`; answer how many."""
        async with self.database.raw() as conn:
            result = await conn.execute(_FORGET_EXPIRED_SECRETS, now)
        return int(result.rsplit(" ", 1)[-1])

    def _free_slots(self, endpoint_id: uuid.UUID) -> asyncio.Queue[int]:
        slots = self.slots.get(endpoint_id)
        if slots is None:
            slots = self.slots[endpoint_id] = asyncio.Queue()
            for slot in range(self.per_endpoint):
                slots.put_nowait(slot)
        return slots

    async def _deliver(self, message: Claimed) -> None:
        free = self._free_slots(message.endpoint_id)
        try:
            slot = await free.get()
            try:
                await self.outcomes.put(await self.transport.send(message, slot))
            finally:
                free.put_nowait(slot)
        finally:
            self.inflight[message.endpoint_id] -= 1
            if not self.inflight[message.endpoint_id]:
                del self.inflight[message.endpoint_id]
            self.wake.set()

    # -- recording --------------------------------------------------------------------------

    async def record(self, outcomes: list[Outcome]) -> None:
        """Write a batch of outcomes: attempts, message states, endpoint health."""
        now = utcnow()
        statuses: list[str] = []
        next_ats: list[datetime | None] = []
        for outcome in outcomes:
            if outcome.success:
                statuses.append("delivered")
                next_ats.append(None)
            elif outcome.gone:
                statuses.append("failed")
                next_ats.append(None)
            else:
                due = next_attempt(outcome, self.delays)
                statuses.append("pending" if due is not None else "failed")
                next_ats.append(due)
        async with self.database.raw() as conn, conn.transaction():
            await conn.execute(
                _RECORD,
                [o.message.id for o in outcomes],
                [o.message.lease_token for o in outcomes],
                statuses,
                next_ats,
                [o.at for o in outcomes],
                [o.status_code for o in outcomes],
                [o.duration_ms for o in outcomes],
                [o.excerpt for o in outcomes],
                [o.error for o in outcomes],
            )
            await self._endpoint_health(conn, outcomes, now)
        count_deliveries(statuses)

    async def _endpoint_health(
        self, conn: asyncpg.Connection, outcomes: list[Outcome], now: datetime
    ) -> None:
        failed = list({o.message.endpoint_id for o in outcomes if not o.success})
        succeeded = list({o.message.endpoint_id for o in outcomes if o.success})
        gone = list({o.message.endpoint_id for o in outcomes if o.gone})
        if failed:
            await conn.execute(
                "UPDATE webhook_endpoint "
                "SET failing_since = coalesce(failing_since, $2::timestamptz) "
                "WHERE id = ANY($1::uuid[])",
                failed,
                now,
            )
            await conn.execute(
                # Typed: PostgreSQL reads the WHERE first and would take $2 for an interval.
                "UPDATE webhook_endpoint SET enabled = false, updated_at = $2::timestamptz, "
                "disabled_reason = 'no successful delivery for ' || $3::text || ' hours' "
                "WHERE id = ANY($1::uuid[]) AND enabled "
                "AND failing_since <= $2::timestamptz - make_interval(secs => $4::float8)",
                failed,
                now,
                f"{self.settings.webhook_disable_after_hours:g}",
                self.settings.webhook_disable_after_hours * 3600,
            )
        if succeeded:
            # Not on every batch: every worker writing the same endpoint rows would queue
            # their commits behind each other. A minute's precision is plenty here.
            await conn.execute(
                "UPDATE webhook_endpoint SET last_success_at = $2::timestamptz, "
                "failing_since = NULL WHERE id = ANY($1::uuid[]) AND (failing_since IS NOT NULL "
                "OR last_success_at IS NULL "
                "OR last_success_at < $2::timestamptz - interval '1 minute')",
                succeeded,
                now,
            )
        if gone:
            await conn.execute(
                "UPDATE webhook_endpoint SET enabled = false, updated_at = $2, "
                "disabled_reason = 'the endpoint answered 410 Gone' WHERE id = ANY($1::uuid[])",
                gone,
                now,
            )
            await conn.execute(
                "UPDATE outbox_message SET status = 'failed', failed_at = $2, lease_token = NULL, "
                "last_error = 'endpoint disabled: it answered 410 Gone' "
                "WHERE endpoint_id = ANY($1::uuid[]) AND status = 'pending'",
                gone,
                now,
            )

    async def _recorder(self) -> None:
        while not (self.stopping.is_set() and self.outcomes.empty() and not self.tasks):
            batch: list[Outcome] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECORD_EVERY * 5):
                    batch.append(await self.outcomes.get())
            deadline = time.monotonic() + RECORD_EVERY
            while len(batch) < RECORD_BATCH and time.monotonic() < deadline:
                try:
                    batch.append(self.outcomes.get_nowait())
                except asyncio.QueueEmpty:
                    await asyncio.sleep(RECORD_EVERY / 4)
            if batch:
                await self._record_surely(batch)

    async def _record_surely(self, batch: list[Outcome]) -> None:
        """Record a batch, trying again for a moment if it fails (the database may be
        restarting); then one outcome at a time, so one the database refuses holds up no
        other, and that one as a bare attempt saying so. Only an outcome the database refuses
        even then is lost: its lease runs out and the message is sent again."""
        for delay in (*RECORD_RETRY_DELAYS, None):
            try:
                await self.record(batch)
                return
            except Exception:
                if delay is None:
                    logger.exception(
                        "recording %d delivery outcomes failed; recording them one by one",
                        len(batch),
                    )
                    break
                logger.warning(
                    "recording %d delivery outcomes failed; trying again in %g s",
                    len(batch),
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
        for outcome in batch:
            try:
                await self.record([outcome])
            except Exception as exc:
                logger.warning(
                    "recording the outcome of webhook message %s failed; recording it without "
                    "its excerpt and error",
                    outcome.message.id,
                    exc_info=True,
                )
                try:
                    await self.record([_bare(outcome, exc)])
                except Exception:
                    logger.exception(
                        "the outcome of an attempt to send webhook message %s was lost",
                        outcome.message.id,
                    )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; then finish what is in flight and record it."""
        recorder = asyncio.create_task(self._recorder())
        next_sweep = time.monotonic()
        try:
            while not stop.is_set():
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SECRET_SWEEP_SECONDS
                    try:
                        await self.forget_expired_secrets(utcnow())
                    except Exception:
                        logger.exception("deleting expired webhook secrets failed")
                free = self.capacity - sum(self.inflight.values())
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        async with self.database.raw() as conn:
                            claimed = await self.claim(conn, free)
                    except Exception:
                        logger.exception("claiming webhook messages failed")
                for message in claimed:
                    self.inflight[message.endpoint_id] += 1
                    task = asyncio.create_task(self._deliver(message))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                if not claimed:
                    # Nothing due (or no free slot): look again when a delivery ends, else
                    # after a short poll, so an idle dispatcher sends a new message promptly.
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
            if self.tasks:
                await asyncio.wait(set(self.tasks))
        except asyncio.CancelledError:
            # The grace ran out: deliveries in flight end too (unrecorded: sent again later).
            for task in list(self.tasks):
                task.cancel()
            raise
        finally:
            self.stopping.set()
            await recorder
            await self.transport.client.aclose()


def _bare(outcome: Outcome, exc: Exception) -> Outcome:
    """The outcome without the texts the database may have refused (the excerpt, the error):
    a success stays one, a failure says why its error is missing."""
    note = f"the attempt's error could not be recorded ({type(exc).__name__})"
    return replace(outcome, excerpt=None, error=None if outcome.success else note)
