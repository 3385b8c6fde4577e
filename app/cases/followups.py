"""The customer's answer to the follow-up question of a resolved case (SPEC §4, §5).

case.resolved carries a one-time token; feedback posted with `in_reply_to: {case_id, token}` is
added to that case instead of opening a new one, and a negative answer reopens it. This is how
the reports learn whether closing the loop worked.
"""

from __future__ import annotations

import contextlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number
from app.cases.models import Case, CaseFeedback
from app.cases.service import CLOSED, RESOLVED, Change, followup_hash, reopen
from app.core.db import utcnow
from app.core.errors import Conflict, FieldError, ValidationFailed

CUSTOMER = "customer"


def _invalid_token() -> ValidationFailed:
    return ValidationFailed(
        "The follow-up link is not valid for this case.",
        errors=[
            FieldError(
                field="in_reply_to.token",
                message="not the follow-up token of this case",
                type="followup_token_invalid",
            )
        ],
    )


async def accept_followup(session: AsyncSession, case_id: uuid.UUID, token: str) -> Case:
    """The case this follow-up answers, locked; 422 for a wrong token. (A used one is the
    caller's to refuse, after it has told a replay of the answer from a second answer.)"""
    case = await session.get(Case, case_id, with_for_update=True, populate_existing=True)
    expected = case.followup_token_hash if case is not None else None
    if case is None or expected is None:
        raise _invalid_token()
    if not hmac.compare_digest(expected, followup_hash(token)):
        raise _invalid_token()
    return case


async def record_followup(
    session: AsyncSession,
    case: Case,
    feedback_id: uuid.UUID,
    *,
    source: str,
    external_id: str | None,
    sentiment: str,
    score: int | None,
) -> None:
    """Link the answer to the case and use up the token; a negative answer reopens the case."""
    now = utcnow()
    case.followup_used_at = now
    session.add(
        CaseFeedback(
            feedback_id=feedback_id,
            case_id=case.id,
            kind="followup",
            added_at=now,
            source=source,
            external_id=external_id,
        )
    )
    change = Change(session, case, CUSTOMER, now)
    change.event(
        "followup_received", feedback_id=str(feedback_id), sentiment=sentiment, score=score
    )
    if sentiment == "negative" and case.status in (RESOLVED, CLOSED):
        # Unless the customer already has another active case with the team: then the answer
        # is on this one's timeline, and that other case is being worked.
        with contextlib.suppress(Conflict):
            await reopen(change, "followup_negative")
    await change.finish()


@dataclass(frozen=True, slots=True)
class FollowupLink:
    """What the follow-up page (app/web) needs to know of the case a link's token belongs to."""

    case_id: uuid.UUID
    number: str
    resolved_at: datetime | None
    used: bool
    customer_locale: str | None


_FIND_LINK = text(
    "SELECT id, number, resolved_at, followup_used_at, customer_locale "
    "FROM feedback_case WHERE followup_token_hash = :hash"
)


async def find_followup(session: AsyncSession, token: str) -> FollowupLink | None:
    """The case a follow-up link's token belongs to, answered or not; None for a token no case
    holds (never issued, or replaced when the case was reopened or resolved again)."""
    row = (await session.execute(_FIND_LINK, {"hash": followup_hash(token)})).first()
    if row is None:
        return None
    return FollowupLink(
        case_id=row.id,
        number=case_number(row.number),
        resolved_at=row.resolved_at,
        used=row.followup_used_at is not None,
        customer_locale=row.customer_locale,
    )
