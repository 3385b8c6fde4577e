"""The background work of a process: the SLA monitor (and, with webhooks, the dispatcher).

`closeloop serve` runs it beside the API; `closeloop worker` runs it alone. Any number of
processes may run it at once (see app/cases/sla.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.cases.sla import monitor
from app.core.config import Settings
from app.core.db import Database


async def run_background(database: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Run every background loop until `stop` is set."""
    await asyncio.gather(
        monitor(
            database.sessionmaker,
            interval=settings.sla_check_interval_seconds,
            autoclose_after=timedelta(days=settings.case_autoclose_days),
            stop=stop,
        )
    )
