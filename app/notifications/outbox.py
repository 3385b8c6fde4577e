"""The transactional outbox: messages written by the statement or transaction that caused them.

An event becomes one message per enabled endpoint subscribed to its type (or to `*`) whose
`sources` filter, if any, shares a source with the event. Messages are only written here; the
dispatcher sends them, never a request.

Bodies are Standard Webhooks envelopes, `{"type", "timestamp", "data"}`, stored once as the
exact bytes every attempt sends. Only message SQL is here: the rooms whose events these are
build their bodies (case events: app/cases/messages.py) and write them with `outbox_insert`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

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


def any_endpoint_takes(event_type: str, sources: str) -> str:
    """SQL: whether an endpoint takes events of this type (SQL text) about these sources (a
    text[]), as `outbox_insert` would write them: a writer builds the bodies only then."""
    return f"EXISTS (SELECT 1 FROM webhook_endpoint e WHERE {subscribed(event_type, sources)})"


def outbox_insert(
    *, event_type: str, body: str, case_id: str, sources: str, now: str, source_from: str
) -> str:
    """SQL: write the messages of the events in `source_from` (a FROM list), each as SQL."""
    return (
        f"INSERT INTO outbox_message ({_COLUMNS}) "
        f"SELECT closeloop_uuid7(), e.id, {event_type}, {body}, {case_id}, 'pending', 0, 0, "
        f"{now}, {now} FROM {source_from} JOIN webhook_endpoint e "
        f"ON {subscribed(event_type, sources)}"
    )


def utc_text(column: str) -> str:
    """SQL: a timestamptz as RFC 3339 in UTC, whatever the session's time zone."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> bytes:
    return orjson.dumps(
        {"type": event_type, "timestamp": at, "data": data}, option=orjson.OPT_UTC_Z
    )
