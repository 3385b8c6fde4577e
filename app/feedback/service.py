"""Ingesting and reading feedback.

This is the hot path, so it runs on raw asyncpg with hand-written SQL (see app/core/db.py): one
statement stores an item, `ON CONFLICT DO NOTHING` makes it idempotent, and a batch is one
statement over a JSON array, whatever its size.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from app.cases.followups import accept_followup, record_followup
from app.cases.intake import (
    case_ctes,
    case_number,
    case_values,
    customer_lookup_keys,
    normalize_phone,
)
from app.core.auth import Principal
from app.core.config import Settings
from app.core.db import Database, session_sql, utcnow, uuid7
from app.core.errors import AppError, Conflict, Forbidden, NotFound, validation_problem
from app.core.schemas import cursor_id, cursor_time, decode_cursor, encode_cursor
from app.feedback.classify import categorize, classify_text, sentiment_of
from app.feedback.redact import redact_personal_data
from app.feedback.schemas import BatchItemResult, FeedbackCreate, Sentiment
from app.notifications.outbox import envelope, outbox_insert
from app.routing.evaluation import RoutingCache, ensure_default_team, routing_item

# The stored columns, in the order of the single-row INSERT.
_INSERT_COLUMNS = (
    "id",
    "source",
    "channel",
    "external_id",
    "api_key_id",
    "idempotency_key",
    "request_hash",
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "customer_name",
    "customer_locale",
    "contact_consent",
    "metric",
    "score",
    "comment",
    "tags",
    "touchpoint",
    "journey_stage",
    "attributes",
    "category",
    "sentiment",
    "routing_rule_id",
    "routing_rule_version",
    "routing_team",
    "submitted_at",
    "received_at",
)
_COLUMN_TYPES = {
    "id": "uuid",
    "api_key_id": "uuid",
    "contact_consent": "boolean",
    "score": "smallint",
    "routing_rule_id": "uuid",
    "routing_rule_version": "integer",
    "tags": "text[]",
    "attributes": "jsonb",
    "submitted_at": "timestamptz",
    "received_at": "timestamptz",
}
_COLUMN_LIST = ", ".join(_INSERT_COLUMNS)
_READ_COLUMNS = (
    "id, source, channel, external_id, customer_external_id, customer_email, customer_phone, "
    "customer_name, customer_locale, contact_consent, metric, score, comment, tags, touchpoint, "
    "journey_stage, attributes, category, sentiment, submitted_at, received_at, "
    "routing_rule_id, routing_rule_version, routing_team, api_key_id, idempotency_key, request_hash"
)
# Feedback with the case it opened or joined, if any.
_SELECT_FEEDBACK = (
    "SELECT "
    + ", ".join(f"feedback.{c.strip()}" for c in _READ_COLUMNS.split(","))
    + ", fc.id AS case_id, fc.number AS case_number, fc.team AS case_team, "
    "fc.status AS case_status FROM feedback "
    "LEFT JOIN case_feedback cf ON cf.feedback_id = feedback.id "
    "LEFT JOIN feedback_case fc ON fc.id = cf.case_id"
)

_RECEIVED_AT = f"${_INSERT_COLUMNS.index('received_at') + 1}::timestamptz"
_BODY = f"${len(_INSERT_COLUMNS) + 1}::bytea"
# One item: stored, with its feedback.received messages, in one statement.
_INSERT_ONE_CTES = (
    f"WITH f AS (INSERT INTO feedback ({_COLUMN_LIST}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_INSERT_COLUMNS) + 1))}) "
    "ON CONFLICT DO NOTHING RETURNING id, source, external_id), "
    "fo AS ("
    + outbox_insert(
        event_type="'feedback.received'",
        body=_BODY,
        case_id="NULL::uuid",
        sources="ARRAY[f.source]",
        now=_RECEIVED_AT,
        source_from="f",
    )
    + ")"
)
_INSERT_ONE_PLAIN = f"{_INSERT_ONE_CTES} SELECT id FROM f"
# Negative feedback: its case opened or joined by the same statement.
_INSERT_ONE_WITH_CASE = (
    f"{_INSERT_ONE_CTES}, {case_ctes(len(_INSERT_COLUMNS) + 2, 'f')} "
    "SELECT f.id, c.id AS case_id, c.number AS case_number, c.team AS case_team, "
    "c.status AS case_status FROM f LEFT JOIN c ON true"
)
# A batch's negative items, already stored, one statement each (pipelined by executemany).
_OPEN_CASE = (
    "WITH "
    + case_ctes(4, "(SELECT $1::uuid AS id, $2::text AS source, $3::text AS external_id)")
    + " SELECT 1"
)
# A batch: every item in one statement, with the feedback.received messages of those stored.
_INSERT_MANY = (
    f"WITH f AS (INSERT INTO feedback ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "
    f"FROM jsonb_to_recordset($1::jsonb) AS r("
    + ", ".join(f"{c} {_COLUMN_TYPES.get(c, 'text')}" for c in _INSERT_COLUMNS)
    + ") ON CONFLICT DO NOTHING RETURNING id, source), "
    "bodies AS (SELECT * FROM unnest($2::uuid[], $3::bytea[]) AS b(id, body)), "
    "fo AS ("
    + outbox_insert(
        event_type="'feedback.received'",
        body="b.body",
        case_id="NULL::uuid",
        sources="ARRAY[f.source]",
        now="$4::timestamptz",
        source_from="f JOIN bodies b ON b.id = f.id",
    )
    + ") SELECT id FROM f"
)
_ATTRIBUTES = _INSERT_COLUMNS.index("attributes")
_SELECT_EXISTING = (
    f"{_SELECT_FEEDBACK} WHERE (feedback.api_key_id = $1 AND feedback.idempotency_key = $2) "
    "OR (feedback.source = $3 AND feedback.external_id = $4) "
    "ORDER BY (feedback.idempotency_key = $2) DESC NULLS LAST LIMIT 1"
)


def request_hash(payload: FeedbackCreate) -> str:
    canonical = json.dumps(
        payload.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_source(principal: Principal, source: str) -> None:
    if principal.allowed_sources is not None and source not in principal.allowed_sources:
        raise Forbidden(
            f"This API key may not send feedback for the source `{source}`.",
            code="source_denied",
        )


def derive(payload: FeedbackCreate, settings: Settings, now: datetime) -> dict[str, Any]:
    """The stored columns that follow from a payload alone: what it says and what it means."""
    if payload.metric is not None and payload.score is not None:
        category = categorize(payload.metric, payload.score, settings)
        sentiment = sentiment_of(category).value
        category_value: str | None = category.value
    else:
        category_value = None
        sentiment = classify_text(payload.comment or "").value
    comment = payload.comment
    if comment is not None and settings.redact_comments:
        comment = redact_personal_data(comment)
    customer = payload.customer
    return {
        "id": uuid7(),
        "source": payload.source,
        "channel": payload.channel.value,
        "external_id": payload.external_id,
        "customer_external_id": customer.external_id if customer else None,
        "customer_email": customer.email.lower() if customer and customer.email else None,
        "customer_phone": normalize_phone(customer.phone) if customer and customer.phone else None,
        "customer_name": customer.name if customer else None,
        "customer_locale": customer.locale if customer else None,
        "contact_consent": customer.contact_consent if customer else True,
        "metric": payload.metric.value if payload.metric else None,
        "score": payload.score,
        "comment": comment,
        "tags": payload.tags,
        "touchpoint": payload.touchpoint,
        "journey_stage": payload.journey_stage.value if payload.journey_stage else None,
        "attributes": payload.attributes,
        "category": category_value,
        "sentiment": sentiment,
        "routing_rule_id": None,
        "routing_rule_version": None,
        "routing_team": None,
        "submitted_at": payload.submitted_at or now,
        "received_at": now,
    }


async def _route(
    conn: asyncpg.Connection, routing: RoutingCache, rows: list[dict[str, Any]]
) -> dict[uuid.UUID, list[Any]]:
    """Give each negative row its team, and the rule and version that chose it; answer the
    parameters of each one's case statement, by feedback id."""
    negative = [row for row in rows if row["sentiment"] == Sentiment.NEGATIVE]
    if not negative:
        return {}
    table = await routing.current(conn)
    default_team = table.default_team
    cases = {}
    for row in negative:
        decision = table.route(routing_item(row))
        if decision.team is None:
            default_team = default_team or await ensure_default_team(conn)
        row["routing_team"] = decision.team or default_team
        if decision.rule is not None:
            row["routing_rule_id"] = decision.rule.id
            row["routing_rule_version"] = decision.rule.version
        case = {
            "priority": decision.case_priority,
            "assignee": decision.assignee,
            "tags": decision.add_tags,
        }
        cases[row["id"]] = case_values(row, case)
    return cases


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def feedback_document(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A feedback row (stored column names) as the API shows it: the FeedbackRead schema.

    Built by hand rather than through the pydantic model: this is on the ingest hot path, and
    validating and dumping the model cost more than the INSERT. tests/test_feedback_api.py
    checks that every answer validates against FeedbackRead.
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
        "submitted_at": _time(row["submitted_at"]),
        "received_at": _time(row["received_at"]),
        "routing": None
        if row["routing_team"] is None
        else {
            "rule_id": None if row["routing_rule_id"] is None else str(row["routing_rule_id"]),
            "rule_version": row["routing_rule_version"],
            "team": row["routing_team"],
        },
        "case": _case_summary(row),
    }


def _case_summary(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any] | None:
    """The case a row (with case_* columns) belongs to, as feedback shows it."""
    if row.get("case_id") is None:
        return None
    return {
        "id": str(row["case_id"]),
        "number": case_number(row["case_number"]),
        "team": row["case_team"],
        "status": row["case_status"],
    }


def received_body(document: dict[str, Any], at: datetime) -> bytes:
    """The feedback.received message: the item as stored. (The case it opens or joins is
    told by case.opened, which carries the feedback ids.)"""
    data = {key: value for key, value in document.items() if key != "case"}
    return envelope("feedback.received", data, at)


@dataclass(frozen=True, slots=True)
class Ingested:
    feedback: dict[str, Any]
    created: bool


async def ingest_feedback(
    database: Database,
    payload: FeedbackCreate,
    *,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    routing: RoutingCache,
) -> Ingested:
    """Store one item, routed when negative; a repeat of an earlier one answers that one."""
    _check_source(principal, payload.source)
    row = derive(payload, settings, utcnow())
    row["api_key_id"] = principal.key_id
    row["idempotency_key"] = idempotency_key
    row["request_hash"] = request_hash(payload) if idempotency_key is not None else None
    if payload.in_reply_to is not None:
        stored_followup = await _ingest_followup(database, payload, row)
        if stored_followup is not None:
            return Ingested(stored_followup, created=True)
        return await _replay(database, payload, principal, idempotency_key, row)
    async with database.raw() as conn:
        cases = await _route(conn, routing, [row])
        # Built once: it is both the feedback.received message and, with its case, the answer.
        document = feedback_document(row)
        values = _insert_values(row, document)
        if row["id"] in cases:
            stored = await conn.fetchrow(_INSERT_ONE_WITH_CASE, *values, *cases[row["id"]])
            if stored is not None:
                document["case"] = _case_summary(stored)
                return Ingested(document, created=True)
        elif await conn.fetchval(_INSERT_ONE_PLAIN, *values) is not None:
            return Ingested(document, created=True)
    return await _replay(database, payload, principal, idempotency_key, row)


_IDENTITY = ("customer_external_id", "customer_email", "customer_phone")
_CUSTOMER = (*_IDENTITY, "customer_name", "customer_locale")


def _insert_values(row: dict[str, Any], document: dict[str, Any]) -> list[Any]:
    """The single-row statements' parameters: the columns, then the feedback.received body."""
    values = [row[c] for c in _INSERT_COLUMNS]
    values[_ATTRIBUTES] = json.dumps(row["attributes"], ensure_ascii=False)
    values.append(received_body(document, row["received_at"]))
    return values


async def _ingest_followup(
    database: Database, payload: FeedbackCreate, row: dict[str, Any]
) -> dict[str, Any] | None:
    """Store a follow-up answer on its case, in one transaction; None when it is a repeat."""
    assert payload.in_reply_to is not None
    async with database.sessionmaker() as session:
        values = _insert_values(row, feedback_document(row))
        if (await session_sql(session, _INSERT_ONE_PLAIN, *values)).scalar() is None:
            return None
        case = await accept_followup(
            session, payload.in_reply_to.case_id, payload.in_reply_to.token
        )
        if not any(row[column] for column in _IDENTITY):
            # Sent from the follow-up link without saying who: it is the case's customer.
            row.update({column: getattr(case, column) for column in _CUSTOMER})
            await session_sql(
                session,
                "UPDATE feedback SET "
                + ", ".join(f"{c} = ${i}" for i, c in enumerate(_CUSTOMER, start=2))
                + " WHERE id = $1",
                row["id"],
                *(row[c] for c in _CUSTOMER),
            )
        await record_followup(
            session, case, row["id"], sentiment=row["sentiment"], score=row["score"]
        )
        summary = {
            "case_id": case.id,
            "case_number": case.number,
            "case_team": case.team,
            "case_status": case.status,
        }
        await session.commit()
    return feedback_document({**row, **summary})


async def _replay(
    database: Database,
    payload: FeedbackCreate,
    principal: Principal,
    idempotency_key: str | None,
    row: dict[str, Any],
) -> Ingested:
    """The item stored before under the same (source, external_id) or Idempotency-Key."""
    async with database.raw() as conn:
        stored = await conn.fetchrow(
            _SELECT_EXISTING, principal.key_id, idempotency_key, payload.source, payload.external_id
        )
    if stored is None:  # the conflicting row vanished (erased) between the two statements
        raise Conflict("The feedback conflicts with another request; retry.")
    if (
        idempotency_key is not None
        and stored["idempotency_key"] == idempotency_key
        and stored["api_key_id"] == principal.key_id
        and stored["request_hash"] != row["request_hash"]
    ):
        raise Conflict(
            "This Idempotency-Key was already used with a different body.",
            code="idempotency_key_reused",
        )
    return Ingested(feedback_document(stored), created=False)


def _item_problem(error: AppError) -> BatchItemResult:
    return BatchItemResult(status="error", problem=error.to_problem().model_dump(exclude_none=True))


async def ingest_batch(
    database: Database,
    items: list[dict[str, Any]],
    *,
    principal: Principal,
    settings: Settings,
    routing: RoutingCache,
) -> list[BatchItemResult]:
    """Store each valid item of a batch in one statement; answer every item on its own."""
    results: list[BatchItemResult | None] = [None] * len(items)
    rows: list[dict[str, Any]] = []
    positions: list[int] = []
    first_of_key: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    now = utcnow()
    for index, item in enumerate(items):
        try:
            payload = FeedbackCreate.model_validate(item)
            _check_source(principal, payload.source)
        except ValidationError as exc:
            results[index] = _item_problem(validation_problem(exc))
            continue
        except AppError as exc:
            results[index] = _item_problem(exc)
            continue
        if payload.external_id is not None:
            key = (payload.source, payload.external_id)
            if key in first_of_key:
                repeats[index] = first_of_key[key]
                continue
            first_of_key[key] = index
        row = derive(payload, settings, now)
        row.update(api_key_id=principal.key_id, idempotency_key=None, request_hash=None)
        rows.append(row)
        positions.append(index)

    if rows:
        async with database.raw() as conn, conn.transaction():
            cases = await _route(conn, routing, rows)
            document = json.dumps(rows, default=str, ensure_ascii=False)
            ids = [r["id"] for r in rows]
            bodies = [received_body(feedback_document(r), r["received_at"]) for r in rows]
            inserted = {r["id"] for r in await conn.fetch(_INSERT_MANY, document, ids, bodies, now)}
            by_id = {r["id"]: r for r in rows}
            opened = [
                [fid, by_id[fid]["source"], by_id[fid]["external_id"], *values]
                for fid, values in cases.items()
                if fid in inserted
            ]
            if opened:
                await conn.executemany(_OPEN_CASE, opened)
            missing = [
                (i, r) for i, r in zip(positions, rows, strict=True) if r["id"] not in inserted
            ]
            existing: dict[tuple[str, str], uuid.UUID] = {}
            if missing:
                found = await conn.fetch(
                    "SELECT id, source, external_id FROM feedback "
                    "WHERE (source, external_id) IN "
                    "(SELECT * FROM unnest($1::text[], $2::text[]))",
                    [r["source"] for _, r in missing],
                    [r["external_id"] for _, r in missing],
                )
                existing = {(f["source"], f["external_id"]): f["id"] for f in found}
        for index, row in zip(positions, rows, strict=True):
            if row["id"] in inserted:
                results[index] = BatchItemResult(status="created", id=row["id"])
            else:
                results[index] = BatchItemResult(
                    status="replayed", id=existing.get((row["source"], row["external_id"]))
                )
    for index, first in repeats.items():
        earlier = results[first]
        assert earlier is not None
        if earlier.status == "error":
            results[index] = earlier
        else:
            results[index] = BatchItemResult(status="replayed", id=earlier.id)
    return [r for r in results if r is not None]


async def get_feedback(database: Database, feedback_id: uuid.UUID) -> dict[str, Any]:
    async with database.raw() as conn:
        row = await conn.fetchrow(f"{_SELECT_FEEDBACK} WHERE feedback.id = $1", feedback_id)
    if row is None:
        raise NotFound("No feedback has this id.", code="feedback_not_found")
    return feedback_document(row)


@dataclass(frozen=True, slots=True)
class FeedbackFilter:
    source: str | None = None
    channel: str | None = None
    metric: str | None = None
    category: str | None = None
    sentiment: str | None = None
    customer: str | None = None
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None


async def list_feedback(
    database: Database, filters: FeedbackFilter, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest submitted first; the cursor is the (submitted_at, id) of the last item."""
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
    sql = _SELECT_FEEDBACK
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    params.append(limit + 1)
    sql += f" ORDER BY feedback.submitted_at DESC, feedback.id DESC LIMIT ${len(params)}"
    async with database.raw() as conn:
        rows = await conn.fetch(sql, *params)
    items = [feedback_document(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["submitted_at"].isoformat(), str(last["id"]))
    return items, next_cursor
