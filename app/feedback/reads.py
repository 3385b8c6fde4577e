"""Reading feedback: one item, a page of items, and the document the API shows for a row."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.identity import case_number, customer_lookup_keys
from app.cases.reads import links_sql
from app.core.auth import Principal, Scope
from app.core.errors import NotFound
from app.core.schemas import cursor_id, cursor_time, decode_cursor, encode_cursor
from app.feedback.derive import routing_item
from app.feedback.schemas import FeedbackFilter
from app.feedback.statements import SELECT_BY_ID, SELECT_FEEDBACK, SELECT_NEGATIVE_BETWEEN
from app.routing.conditions import Item


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def feedback_document(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A feedback row (stored column names) as the API shows it: the FeedbackRead schema.

    Built by hand rather than through the pydantic model: this is on the ingest hot path, and
    validating and dumping the model cost more than the INSERT. tests/core/test_documents.py checks
    every answer against FeedbackRead.
    """
    attributes = row["attributes"]
    return {
        "id": str(row["id"]),
        "source": row["source"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "customer": {
            "external_id": row["customer_external_id"],
            "email": row["customer_email"],
            "phone": row["customer_phone"],
            "name": row["customer_name"],
            "locale": row["customer_locale"],
            "contact_consent": row["contact_consent"],
            "verified": row["customer_verified"],
        },
        "metric": row["metric"],
        "score": row["score"],
        "comment": row["comment"],
        "tags": list(row["tags"]),
        "touchpoint": row["touchpoint"],
        "journey_stage": row["journey_stage"],
        "attributes": json.loads(attributes) if isinstance(attributes, str) else attributes,
        "category": row["category"],
        "sentiment": row["sentiment"],
        "sentiment_cues": list(row["sentiment_cues"]),
        "submitted_at": _time(row["submitted_at"]),
        "received_at": _time(row["received_at"]),
        "routing": None
        if row["routing_team"] is None
        else {
            "rule_id": None if row["routing_rule_id"] is None else str(row["routing_rule_id"]),
            "rule_version": row["routing_rule_version"],
            "team": row["routing_team"],
        },
        "case": case_summary(row),
    }


def case_summary(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any] | None:
    """The case a row (with case_* columns) belongs to, as feedback shows it."""
    if row.get("case_id") is None:
        return None
    return {
        "id": str(row["case_id"]),
        "number": case_number(row["case_number"]),
        "team": row["case_team"],
        "status": row["case_status"],
    }


def replay_visible(principal: Principal, stored: asyncpg.Record | dict[str, Any]) -> bool:
    """Whether a replay may show the stored item: never to a publishable key (SPEC §7); to a
    trusted key that stored it or may read feedback."""
    if principal.publishable:
        return False
    return stored["api_key_id"] == principal.key_id or principal.has(Scope.FEEDBACK_READ)


def feedback_not_found() -> NotFound:
    return NotFound("No feedback has this id.", code="feedback_not_found")


async def read_feedback(conn: asyncpg.Connection, feedback_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(SELECT_BY_ID, feedback_id)
    if row is None:
        raise feedback_not_found()
    return feedback_document(row)


async def get_feedback(
    conn: asyncpg.Connection, feedback_id: uuid.UUID, principal: Principal
) -> dict[str, Any]:
    """One item; one of a source the key may not read is not there for it."""
    document = await read_feedback(conn, feedback_id)
    if (
        principal.allowed_sources is not None
        and document["source"] not in principal.allowed_sources
    ):
        raise feedback_not_found()
    return document


async def list_feedback(
    conn: asyncpg.Connection,
    filters: FeedbackFilter,
    *,
    principal: Principal,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest submitted first, of the sources the key may read; the cursor is the
    (submitted_at, id) of the last item."""
    clauses: list[str] = []
    params: list[Any] = []

    def where(sql: str, *values: Any) -> None:
        placeholders = []
        for value in values:
            params.append(value)
            placeholders.append(f"${len(params)}")
        clauses.append(sql.format(*placeholders))

    for column in ("source", "channel", "metric", "category", "sentiment"):
        value = getattr(filters, column)
        if value is not None:
            where(f"feedback.{column} = {{}}", value)
    if principal.allowed_sources is not None:
        where("feedback.source = ANY({})", sorted(principal.allowed_sources))
    if filters.customer is not None:
        where(
            "(feedback.customer_external_id = ANY({0}) OR feedback.customer_email = ANY({0}) "
            "OR feedback.customer_phone = ANY({0}))",
            customer_lookup_keys(filters.customer),
        )
    if filters.submitted_from is not None:
        where("feedback.submitted_at >= {}", filters.submitted_from)
    if filters.submitted_to is not None:
        where("feedback.submitted_at < {}", filters.submitted_to)
    if cursor is not None:
        at, last_id = decode_cursor(cursor, 2)
        where(
            "(feedback.submitted_at, feedback.id) < ({}, {})",
            cursor_time(at),
            cursor_id(last_id),
        )
    sql = SELECT_FEEDBACK
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    params.append(limit + 1)
    sql += f" ORDER BY feedback.submitted_at DESC, feedback.id DESC LIMIT ${len(params)}"
    rows = await conn.fetch(sql, *params)
    items = [feedback_document(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["submitted_at"].isoformat(), str(last["id"]))
    return items, next_cursor


async def negative_items(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> AsyncGenerator[tuple[uuid.UUID, Item]]:
    """The stored negative feedback of [start, end), oldest first, as routing items (in the
    connection's transaction: a cursor needs one)."""
    async for row in conn.cursor(SELECT_NEGATIVE_BETWEEN, start, end, prefetch=2_000):
        yield row["id"], routing_item(row)


CASE_ITEMS = text(
    "SELECT cf.case_id, cf.kind, cf.added_at, f.id, f.source, f.channel, f.external_id, "
    "f.metric, f.score, f.category, f.sentiment, f.comment, f.tags, f.submitted_at, "
    f"f.customer_verified AS verified FROM ({links_sql(':ids')}) cf "
    "JOIN feedback f ON f.id = cf.feedback_id ORDER BY cf.added_at DESC, f.id DESC"
)


async def case_items(
    session: AsyncSession, case_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each case's feedback, newest first, as the CaseFeedbackItem schema shows it: the
    `CaseItems` reader of app/cases/reads.py."""
    items: dict[uuid.UUID, list[dict[str, Any]]] = {i: [] for i in case_ids}
    if case_ids:
        for row in (await session.execute(CASE_ITEMS, {"ids": case_ids})).mappings():
            items[row["case_id"]].append(dict(row))
    return items


_OPENING_SOURCE = text(
    f"SELECT f.source FROM ({links_sql('ARRAY[CAST(:case_id AS uuid)]')}) cf "
    "JOIN feedback f ON f.id = cf.feedback_id WHERE cf.kind <> 'followup' "
    "ORDER BY cf.added_at LIMIT 1"
)


async def opening_source(session: AsyncSession, case_id: uuid.UUID) -> str | None:
    """The source of the feedback that opened a case; None when it is gone (erased)."""
    source: str | None = await session.scalar(_OPENING_SOURCE, {"case_id": case_id})
    return source
