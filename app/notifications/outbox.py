"""The transactional outbox: messages written by the statement or transaction that caused them.

An event becomes one message per enabled endpoint subscribed to its type (or to `*`) whose
`sources` filter, if any, shares a source with the event. Messages are only written here; the
dispatcher sends them, never a request.

Bodies are Standard Webhooks envelopes, `{"type", "timestamp", "data"}`, stored once as the
exact bytes every attempt sends. Case events carry the same `case` block whichever path wrote
them; it is built in SQL (`case_block`) so that the ingest statement, which opens cases
without a round trip to Python, and the case lifecycle, which runs on the ORM, share one
definition.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

EVENT_TYPES = (
    "feedback.received",
    "case.opened",
    "case.assigned",
    "case.status_changed",
    "case.sla_breached",
    "case.resolved",
    "case.reopened",
    "case.closed",
)

_COLUMNS = (
    "id, endpoint_id, event_type, body, case_id, status, attempts, tries, next_attempt_at, "
    "created_at"
)


def subscribed(event_type: str, sources: str) -> str:
    """SQL: endpoint `e` takes events of this type (SQL text) about these sources (a text[])."""
    return (
        f"e.enabled AND (e.event_types @> ARRAY[{event_type}]::text[] OR '*' = ANY(e.event_types)) "
        f"AND (e.sources IS NULL OR e.sources && {sources})"
    )


def outbox_insert(
    *, event_type: str, body: str, case_id: str, sources: str, now: str, source_from: str
) -> str:
    """SQL: write the messages of the events in `source_from` (a FROM list), each as SQL."""
    return (
        f"INSERT INTO outbox_message ({_COLUMNS}) "
        f"SELECT gen_random_uuid(), e.id, {event_type}, {body}, {case_id}, 'pending', 0, 0, "
        f"{now}, {now} FROM {source_from} JOIN webhook_endpoint e "
        f"ON {subscribed(event_type, sources)}"
    )


def utc_text(column: str) -> str:
    """SQL: a timestamptz as RFC 3339 in UTC, whatever the session's time zone."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def case_feedback_sql(case: str) -> str:
    """SQL: the feedback that opened or joined case `case`: [{id, source, external_id}]."""
    return (
        "(SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'source', f.source, "
        "'external_id', f.external_id) ORDER BY cf.added_at), '[]'::jsonb) "
        "FROM case_feedback cf JOIN feedback f ON f.id = cf.feedback_id "
        f"WHERE cf.case_id = {case}.id AND cf.kind <> 'followup')"
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
        'feedback', {feedback},
        'created_at', {utc_text(f"{c}.created_at")},
        'updated_at', {utc_text(f"{c}.updated_at")})"""


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> bytes:
    return orjson.dumps(
        {"type": event_type, "timestamp": at, "data": data}, option=orjson.OPT_UTC_Z
    )


_CASE_EVENT = text(
    "WITH c AS (SELECT * FROM feedback_case WHERE id = :case_id), "
    "d AS (SELECT jsonb_build_object('type', CAST(:event_type AS text), "
    "'timestamp', CAST(:at_text AS text), 'data', "
    f"jsonb_build_object('case', {case_block('c', case_feedback_sql('c'))}) || "
    "CAST(:extra AS jsonb)) AS envelope, "
    "(SELECT coalesce(array_agg(DISTINCT f.source), '{}') FROM case_feedback cf "
    "JOIN feedback f ON f.id = cf.feedback_id WHERE cf.case_id = c.id) AS sources FROM c) "
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
