"""Case events as webhook messages: the `case` block every case event carries, in SQL.

Built in SQL so that the ingest statement, which opens cases without a round trip to Python,
and the case lifecycle, which runs on the ORM, share one definition; written to the outbox in
the transaction of the change that caused it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.notifications.outbox import outbox_insert, utc_text


# A case's messages name its items and go to the endpoints of their sources: the links record
# each item's source and external id when they are made, so these read no feedback table.
def case_feedback_sql(case: str) -> str:
    """SQL: the feedback that opened or joined case `case`: [{id, source, external_id}]."""
    return (
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('id', cf.feedback_id, "
        "'source', cf.source, 'external_id', cf.external_id) ORDER BY cf.added_at), '[]'::jsonb) "
        f"FROM case_feedback cf WHERE cf.case_id = {case}.id AND cf.kind <> 'followup')"
    )


def case_sources_sql(case: str) -> str:
    """SQL: the sources of every item linked to case `case`, answers included (text[])."""
    return (
        "(SELECT coalesce(array_agg(DISTINCT cf.source), '{}') FROM case_feedback cf "
        f"WHERE cf.case_id = {case}.id)"
    )


def case_block(case: str, feedback: str) -> str:
    """SQL: the `case` block of every case event, from a row `case` of feedback_case."""
    c = case
    return f"""jsonb_build_object(
        'id', {c}.id, 'number', 'C-' || {c}.number, 'status', {c}.status,
        'priority', {c}.priority, 'team', {c}.team, 'assignee', {c}.assignee,
        'customer', jsonb_build_object(
            'external_id', {c}.customer_external_id, 'email', {c}.customer_email,
            'phone', {c}.customer_phone, 'name', {c}.customer_name,
            'locale', {c}.customer_locale, 'contact_consent', {c}.contact_consent,
            'verified', {c}.customer_verified),
        'feedback', {feedback}, 'version', {c}.version,
        'created_at', {utc_text(f"{c}.created_at")},
        'updated_at', {utc_text(f"{c}.updated_at")})"""


_CASE_EVENT = text(
    "WITH c AS (SELECT * FROM feedback_case WHERE id = :case_id), "
    "d AS (SELECT jsonb_build_object('type', CAST(:event_type AS text), "
    "'timestamp', CAST(:at_text AS text), 'data', "
    f"jsonb_build_object('case', {case_block('c', case_feedback_sql('c'))}) || "
    "CAST(:extra AS jsonb)) AS envelope, "
    f"{case_sources_sql('c')} AS sources FROM c) "
    + outbox_insert(
        event_type="CAST(:event_type AS text)",
        body="convert_to(d.envelope::text, 'UTF8')",
        case_id="CAST(:case_id AS uuid)",
        sources="d.sources",
        now="CAST(:at AS timestamptz)",
        source_from="d",
    )
    + " RETURNING id"
)


async def enqueue_case_event(
    session: AsyncSession,
    event_type: str,
    case_id: uuid.UUID,
    at: datetime,
    **extra: Any,
) -> int:
    """Write a case event's messages in the session's transaction (after a flush, so the case
    block shows the change); answer how many endpoints will get it."""
    await session.flush()
    rows = await session.execute(
        _CASE_EVENT,
        {
            "case_id": case_id,
            "event_type": event_type,
            "at": at,
            "at_text": at.isoformat().replace("+00:00", "Z"),
            "extra": orjson.dumps(extra).decode(),
        },
    )
    return len(rows.all())
