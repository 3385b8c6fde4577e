"""The background work of a process: the SLA monitor, the webhook dispatcher and, when set,
comment retention.

`closeloop serve` runs both beside the API (the dispatcher unless FEEDBACK_DISPATCHER_IN_PROCESS
is false); `closeloop worker` runs both alone. Any number of processes may run them at once
(see app/cases/sla.py and app/notifications/dispatcher.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.cases.sla import monitor
from app.core.config import Settings
from app.core.db import Database
from app.feedback.retention import retain_comments
from app.notifications.dispatcher import Dispatcher


async def run_background(
    database: Database, settings: Settings, stop: asyncio.Event, *, dispatch: bool = True
) -> None:
    """Run every background loop until `stop` is set."""
    loops = [
        monitor(
            database.sessionmaker,
            interval=settings.sla_check_interval_seconds,
            autoclose_after=timedelta(days=settings.case_autoclose_days),
            stop=stop,
        )
    ]
    if settings.comment_retention_days is not None:
        loops.append(
            retain_comments(database.sessionmaker, days=settings.comment_retention_days, stop=stop)
        )
    if dispatch:
        loops.append(Dispatcher(database, settings).run(stop))
    await asyncio.gather(*loops)
