"""A customer's traces in stored webhook messages, scrubbed or exported (SPEC §7).

Every message about the customer's cases or feedback, pending or already delivered, keeps its
envelope and its figures; what named or quoted the customer becomes null: the `customer` block's
details, comments, the message they were told, and any other string holding one of their
identities, name or words. A pending message is sent as scrubbed (each attempt signs the stored
bytes anew). What receivers answered to those messages is dropped too: it may echo them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow

# Fields that always carry the customer's words or details, wherever they are in a body.
_PERSONAL_FIELDS = frozenset({"comment", "customer_message", "attributes"})
_CUSTOMER_KEPT = frozenset({"contact_consent", "verified"})

# feedback.received messages carry no case id: they are found by the item's id in the body,
# among those written since the customer's first item arrived.
_MESSAGES = text(
    "SELECT id, body FROM outbox_message WHERE case_id = ANY(:case_ids) "
    "UNION ALL "
    "SELECT id, body FROM outbox_message WHERE case_id IS NULL "
    "AND event_type = 'feedback.received' AND created_at >= :since "
    "AND EXISTS (SELECT 1 FROM unnest(CAST(:feedback_ids AS text[])) f "
    "WHERE position(convert_to(f, 'UTF8') IN body) > 0)"
)
_REWRITE = text("UPDATE outbox_message SET body = :body WHERE id = :id")
_FORGET_ANSWERS = text(
    "UPDATE delivery_attempt SET response_excerpt = NULL WHERE message_id = ANY(:ids)"
)


def scrub(value: Any, needles: frozenset[str]) -> Any:
    """The JSON value without anything personal (see the module's docstring)."""
    if isinstance(value, dict):
        scrubbed: dict[str, Any] = {}
        for key, item in value.items():
            if key in _PERSONAL_FIELDS:
                scrubbed[key] = {} if key == "attributes" else None
            elif key == "customer" and isinstance(item, dict):
                scrubbed[key] = {k: (v if k in _CUSTOMER_KEPT else None) for k, v in item.items()}
            else:
                scrubbed[key] = scrub(item, needles)
        return scrubbed
    if isinstance(value, list):
        return [scrub(item, needles) for item in value]
    if isinstance(value, str) and any(needle in value.lower() for needle in needles):
        return None
    return value


async def scrub_messages(
    session: AsyncSession,
    *,
    case_ids: list[uuid.UUID],
    feedback_ids: list[uuid.UUID],
    since: datetime | None,
    quoted: set[str],
) -> int:
    """Scrub every stored message about these cases or feedback; answer how many changed."""
    needles = frozenset(q.strip().lower() for q in quoted if len(q.strip()) >= 4)
    params = {
        "case_ids": case_ids,
        "feedback_ids": [str(i) for i in feedback_ids],
        "since": since or utcnow(),
    }
    changed = []
    for row in (await session.execute(_MESSAGES, params)).all():
        body = orjson.loads(row.body)
        scrubbed = orjson.dumps(scrub(body, needles))
        if scrubbed != bytes(row.body):
            await session.execute(_REWRITE, {"id": row.id, "body": scrubbed})
            changed.append(row.id)
    if changed:
        await session.execute(_FORGET_ANSWERS, {"ids": changed})
    return len(changed)


_EXPORT = text(
    "SELECT m.id, m.event_type, m.case_id, m.status, m.attempts, m.created_at, m.delivered_at, "
    "m.failed_at, m.last_error, m.body, "
    "(SELECT coalesce(jsonb_agg(jsonb_build_object('at', a.at, 'status_code', a.status_code, "
    "'error', a.error) ORDER BY a.at), '[]'::jsonb) FROM delivery_attempt a "
    "WHERE a.message_id = m.id) AS deliveries "
    "FROM outbox_message m WHERE m.case_id = ANY(:case_ids) ORDER BY m.created_at, m.id"
)


async def messages_of(
    session: AsyncSession, case_ids: list[uuid.UUID]
) -> AsyncIterator[dict[str, Any]]:
    """Each message about these cases, with what it said and every delivery's outcome."""
    if not case_ids:
        return
    result = await session.stream(_EXPORT, {"case_ids": case_ids})
    async for row in result.mappings():
        yield {**row, "body": orjson.loads(row["body"])}
