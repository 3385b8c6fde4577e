"""Comment retention (FEEDBACK_COMMENT_RETENTION_DAYS): the worker blanks the comment and the
customer contact of feedback older than the setting, a bounded batch per transaction, keeping
the figures (app/feedback/erasure.py says what stays).

The first pass after a start walks all feedback; each later one starts a day before where the
last one stopped, so a pass reads only what aged meanwhile. (An item stored later with a
submitted_at already older than that is caught by the next start's full pass.) Any number of
processes may run it: blanking twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import utcnow
from app.feedback.erasure import START, WalkKey, age_out_feedback

logger = logging.getLogger(__name__)

BATCH = 1000
INTERVAL_SECONDS = 3600.0


async def age_out_pass(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    days: float,
    since: WalkKey = START,
    batch: int = BATCH,
    stop: asyncio.Event | None = None,
) -> int:
    """One pass over feedback from `since` on; answer how many items it blanked."""
    before = utcnow() - timedelta(days=days)
    after: WalkKey | None = since
    blanked = 0
    while after is not None and not (stop is not None and stop.is_set()):
        async with sessionmaker() as session, session.begin():
            count, after = await age_out_feedback(session, before=before, after=after, batch=batch)
        blanked += count
    return blanked


async def retain_comments(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    days: float,
    stop: asyncio.Event,
    interval: float = INTERVAL_SECONDS,
) -> None:
    """Run passes every `interval` seconds until `stop` is set."""
    since = START
    while not stop.is_set():
        started = utcnow() - timedelta(days=days)
        try:
            blanked = await age_out_pass(sessionmaker, days=days, since=since, stop=stop)
            if blanked:
                logger.info("comment retention pass", extra={"blanked": blanked})
            since = (started - timedelta(days=1), START[1])
        except Exception:
            logger.exception("comment retention pass failed; retrying next interval")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
