"""The SLA monitor: breaches found by the service itself, without a request (SPEC §4).

Each pass claims the active cases past a due time with `FOR UPDATE SKIP LOCKED`, flags the
breach, writes `sla_breached` once per kind, and escalates to the team's escalation team where
one is set; then it closes resolved cases that stayed quiet long enough. Any number of
processes may run it at once: a case locked by one is skipped by the others, and a flag set by
one is seen by the next pass of all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cases.autoclose import BATCH as AUTOCLOSE_BATCH
from app.cases.autoclose import close_quiet_cases_batch
from app.cases.models import Case
from app.cases.service import IN_PROGRESS, OPEN, SYSTEM, Change
from app.core.db import utcnow
from app.core.metrics import count_autoclosed, count_breach
from app.routing.models import Team

logger = logging.getLogger(__name__)

BATCH = 200


@dataclass
class SlaPass:
    """What one pass of the SLA monitor did, counted for the worker's log line."""

    first_response_breaches: int = 0
    resolution_breaches: int = 0
    escalations: int = 0
    closed: int = 0


async def _escalate(change: Change, kind: str, result: SlaPass) -> str | None:
    case = change.case
    team = await change.session.get(Team, case.team)
    if team is None or team.escalation_team is None or team.escalation_team == case.team:
        return None
    change.event("escalated", **{"from": case.team, "to": team.escalation_team, "sla": kind})
    case.team = team.escalation_team
    result.escalations += 1
    return case.team


async def flag_breaches(session: AsyncSession, now: datetime, result: SlaPass) -> int:
    """One batch of breaches; answers how many cases it changed."""
    first_response_due = (
        (Case.status == OPEN)
        & Case.first_response_at.is_(None)
        & ~Case.first_response_breached
        & (Case.first_response_due_at <= now)
    )
    resolution_due = (
        Case.status.in_((OPEN, IN_PROGRESS))
        & ~Case.resolution_breached
        & (Case.resolution_due_at <= now)
    )
    cases = list(
        await session.scalars(
            select(Case)
            .where(or_(first_response_due, resolution_due))
            .order_by(Case.resolution_due_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    for case in cases:
        change = Change(session, case, SYSTEM, now)
        kinds = []
        if (
            case.status == OPEN
            and case.first_response_at is None
            and not case.first_response_breached
            and case.first_response_due_at <= now
        ):
            case.first_response_breached = True
            kinds.append(("first_response", case.first_response_due_at))
            result.first_response_breaches += 1
        if not case.resolution_breached and case.resolution_due_at <= now:
            case.resolution_breached = True
            kinds.append(("resolution", case.resolution_due_at))
            result.resolution_breaches += 1
        for kind, due in kinds:
            change.event("sla_breached", kind=kind, due_at=due.isoformat())
            count_breach(case.team, kind)
        escalated_to = await _escalate(change, kinds[0][0], result)
        for kind, due in kinds:
            change.publish(
                "case.sla_breached", kind=kind, due_at=due.isoformat(), escalated_to=escalated_to
            )
        await change.finish()
    return len(cases)


async def close_quiet_cases(
    session: AsyncSession, now: datetime, quiet: timedelta, result: SlaPass
) -> int:
    """One batch of quiet resolved cases closed, set-based (app/cases/autoclose.py); answers
    how many."""
    by_team = await close_quiet_cases_batch(session, now, quiet)
    closed = sum(by_team.values())
    for team, count in by_team.items():
        count_autoclosed(team, count)
    result.closed += closed
    return closed


async def _in_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[int]],
    between: Callable[[], Awaitable[None]] | None = None,
    full: int = BATCH,
) -> None:
    """Run `work` a transaction at a time until a batch comes back short of `full`, calling
    `between` (which renews the job's lease) after each full one."""
    while True:
        async with sessionmaker() as session:
            changed = await work(session)
            await session.commit()
        if changed < full:
            return
        if between is not None:
            await between()


async def run_pass(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    autoclose_after: timedelta,
    now: datetime | None = None,
    between: Callable[[], Awaitable[None]] | None = None,
) -> SlaPass:
    """Flag every breach and close every quiet case due at `now`."""
    at = now or utcnow()
    result = SlaPass()
    await _in_batches(sessionmaker, lambda session: flag_breaches(session, at, result), between)
    await _in_batches(
        sessionmaker,
        lambda session: close_quiet_cases(session, at, autoclose_after, result),
        between,
        full=AUTOCLOSE_BATCH,
    )
    return result
