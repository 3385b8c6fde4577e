"""A customer's cases forgotten or exported (SPEC §7).

Erasure blanks the customer's identity and contact on their cases, the message they were told
and any note or summary that quotes them (their identities, name or words), and stops the
follow-up link; status, team, priority, tags, codes, clocks and the timeline's shape stay, so
the reports do not move. Each case's timeline records the erasure and who made it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sqlalchemy import delete, select, text, union
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.customers import cases_bearing
from app.cases.models import Case, CaseEvent, CaseFeedback, Customer, CustomerErasure
from app.cases.service import record
from app.core.db import utcnow

ERASED = "[erased]"

# A quote is any of the needles, in any case, anywhere in the text.
_QUOTES = "EXISTS (SELECT 1 FROM unnest(CAST(:needles AS text[])) n WHERE strpos(lower({}), n) > 0)"
_ERASE_CASES = text(
    "UPDATE feedback_case SET customer_key = NULL, customer_keys = '{}', "
    "customer_external_id = NULL, customer_email = NULL, customer_phone = NULL, "
    "customer_name = NULL, customer_locale = NULL, can_notify = false, customer_message = NULL, "
    "followup_token_hash = NULL, resolution_summary = CASE WHEN "
    + _QUOTES.format("resolution_summary")
    + " THEN :erased ELSE resolution_summary END, version = version + 1, updated_at = :now "
    "WHERE id = ANY(:ids)"
)
_ERASE_NOTES = text(
    "UPDATE case_event SET data = jsonb_set(data, '{body}', to_jsonb(CAST(:erased AS text))) "
    "WHERE case_id = ANY(:ids) AND type = 'note_added' AND " + _QUOTES.format("data->>'body'")
)


async def erase_records(session: AsyncSession, records: Iterable[uuid.UUID]) -> None:
    """Forget the customer records and every identity linked in them (locked in id order, as
    linking locks them)."""
    ids = sorted(set(records))
    if ids:
        await session.scalars(
            select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update()
        )
        await session.execute(delete(Customer).where(Customer.id.in_(ids)))


def key_hashes(keys: Iterable[str]) -> list[str]:
    return sorted({hashlib.sha256(key.encode()).hexdigest() for key in keys})


async def was_erased(session: AsyncSession, keys: list[str]) -> bool:
    """Whether a customer known by one of these keys has been erased already."""
    found = await session.scalar(
        select(CustomerErasure.id)
        .where(CustomerErasure.key_hashes.overlap(key_hashes(keys)))
        .limit(1)
    )
    return found is not None


async def customer_case_ids(
    session: AsyncSession, keys: list[str], feedback_ids: list[uuid.UUID], *, known: bool = False
) -> list[uuid.UUID]:
    """The cases of a customer: by their identities (`cases_bearing`), or by their feedback."""
    linked = select(CaseFeedback.case_id).where(CaseFeedback.feedback_id.in_(feedback_ids))
    found = await session.scalars(
        union(select(Case.id).where(cases_bearing(keys, known=known)), linked)
    )
    return sorted(found)


async def followup_feedback_ids(
    session: AsyncSession, case_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """The answers to these cases' follow-up questions."""
    rows = await session.execute(
        text(
            "SELECT feedback_id FROM case_feedback WHERE case_id = ANY(:ids) AND kind = 'followup'"
        ),
        {"ids": case_ids},
    )
    return [row[0] for row in rows]


async def erase_cases(
    session: AsyncSession,
    case_ids: list[uuid.UUID],
    *,
    quoted: set[str],
    actor: str,
) -> int:
    """Forget the customer on these cases; answer how many notes quoted them."""
    if not case_ids:
        return 0
    # Too short a needle would erase notes that merely contain a common word or digit pair.
    needles = sorted({q.strip().lower() for q in quoted if len(q.strip()) >= 4})
    params = {"ids": case_ids, "needles": needles, "erased": ERASED, "now": utcnow()}
    await session.execute(_ERASE_CASES, params)
    notes = await session.execute(_ERASE_NOTES, params)
    for case_id in case_ids:
        case = await session.get(Case, case_id, populate_existing=True)
        if case is not None:
            record(session, case, "customer_erased", actor)
    return int(getattr(notes, "rowcount", 0) or 0)


def record_erasure(
    session: AsyncSession,
    *,
    keys: Iterable[str],
    actor: str,
    feedback_items: int,
    case_ids: list[uuid.UUID],
    notes: int,
    messages: int,
) -> CustomerErasure:
    erasure = CustomerErasure(
        key_hashes=key_hashes(keys),
        actor=actor,
        at=utcnow(),
        feedback_items=feedback_items,
        case_ids=case_ids,
        notes=notes,
        messages=messages,
    )
    session.add(erasure)
    return erasure


_CASE_COLUMNS = [c for c in Case.__table__.c if c.name != "followup_token_hash"]


async def cases_of(
    session: AsyncSession, case_ids: list[uuid.UUID]
) -> AsyncIterator[dict[str, Any]]:
    """Each case as stored (its follow-up token's hash apart), with its feedback links and its
    whole timeline, notes included."""
    for case_id in case_ids:
        row = (
            (await session.execute(select(*_CASE_COLUMNS).where(Case.id == case_id)))
            .mappings()
            .one()
        )
        links = await session.execute(
            text(
                "SELECT feedback_id, kind, added_at FROM case_feedback WHERE case_id = :id "
                "ORDER BY added_at"
            ),
            {"id": case_id},
        )
        events = await session.scalars(
            select(CaseEvent)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.at, CaseEvent.id)
        )
        yield {
            **row,
            "feedback": [dict(link) for link in links.mappings()],
            "timeline": [
                {"type": e.type, "actor": e.actor, "at": e.at, "data": e.data} for e in events
            ],
        }
