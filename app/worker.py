"""The background work of a process: the webhook dispatcher, the jobs (the SLA monitor, outbox
retention, folding the reports' rollups) and, when set, comment retention.

`closeloop serve` runs both beside the API (the dispatcher unless FEEDBACK_DISPATCHER_IN_PROCESS
is false, the jobs unless FEEDBACK_JOBS_IN_PROCESS is false); `closeloop worker` runs both
alone. Any number of processes may run them at once: dispatchers share the outbox by leases on
its messages (app/notifications/dispatcher.py), and each job runs in one process at a time, by
a lease on its name (app/core/jobs.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from app.cases.sla import run_pass
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.jobs import Lease, run_exclusively
from app.core.metrics import count_outbox_deleted
from app.feedback.retention import retain_comments
from app.notifications.dispatcher import Dispatcher
from app.notifications.retention import delete_delivered
from app.reports.facts import fold
from app.reports.rollups import compact

logger = logging.getLogger(__name__)

# Retention has no deadline to keep: a look every few minutes is plenty.
RETENTION_INTERVAL_SECONDS = 300.0
# The reports are exact with or without folding; folding keeps their counts few and the
# cases they must work out from the raw rows few.
ROLLUP_INTERVAL_SECONDS = 10.0


async def sla_monitor(database: Database, settings: Settings, lease: Lease) -> None:
    result = await run_pass(
        database.sessionmaker,
        autoclose_after=timedelta(days=settings.case_autoclose_days),
        between=lease.renew,
    )
    if result.first_response_breaches or result.resolution_breaches or result.closed:
        logger.info("sla pass", extra=result.__dict__)


async def outbox_retention(database: Database, settings: Settings, lease: Lease) -> None:
    before = utcnow() - timedelta(days=settings.outbox_retention_days)
    deleted = await delete_delivered(database, before, between=lease.renew)
    count_outbox_deleted(deleted)
    if deleted:
        logger.info("outbox retention", extra={"deleted": deleted})


async def fold_report_rollups(database: Database, lease: Lease) -> None:
    folded = await compact(database, between=lease.renew)
    cases = await fold(database, between=lease.renew)
    if folded or cases:
        logger.debug("report rollups folded", extra={"folded": folded, "case_marks": cases})


async def _every(
    interval: float, stop: asyncio.Event, job: Callable[[], Awaitable[object]]
) -> None:
    while not stop.is_set():
        await job()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_background(
    database: Database,
    settings: Settings,
    stop: asyncio.Event,
    *,
    dispatch: bool = True,
    jobs: bool = True,
) -> None:
    """Run every background loop until `stop` is set; a pass under way finishes first."""
    loops = []
    if jobs:
        sla = Lease(database, "sla_monitor")
        retention = Lease(database, "outbox_retention")
        rollups = Lease(database, "report_rollups")
        loops += [
            _every(
                settings.sla_check_interval_seconds,
                stop,
                lambda: run_exclusively(sla, lambda lease: sla_monitor(database, settings, lease)),
            ),
            _every(
                RETENTION_INTERVAL_SECONDS,
                stop,
                lambda: run_exclusively(
                    retention, lambda lease: outbox_retention(database, settings, lease)
                ),
            ),
            _every(
                ROLLUP_INTERVAL_SECONDS,
                stop,
                lambda: run_exclusively(
                    rollups, lambda lease: fold_report_rollups(database, lease)
                ),
            ),
        ]
        if settings.comment_retention_days is not None:
            # Blanking twice changes nothing, so it needs no lease (app/feedback/retention.py).
            loops.append(
                retain_comments(
                    database.sessionmaker, days=settings.comment_retention_days, stop=stop
                )
            )
    if dispatch:
        loops.append(Dispatcher(database, settings).run(stop))
    await asyncio.gather(*loops)


async def finish_within(grace: float, tasks: list[asyncio.Task[None]]) -> None:
    """Let background work that was told to stop finish (deliveries in flight, and their
    outcomes recorded) for at most `grace` seconds; then cancel what is left. A delivery cut
    short has no outcome on record: its lease runs out and it is sent again, never lost."""
    done, pending = await asyncio.wait(tasks, timeout=grace or None)
    for task in pending:
        task.cancel()
    if pending:
        logger.warning("background work cut short after %g s of grace", grace)
        await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()
