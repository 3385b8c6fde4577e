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
import orjson
from pydantic import ValidationError

from app.cases.followups import accept_followup, record_followup
from app.cases.intake import (
    case_ctes,
    case_number,
    case_values,
    customer_lookup_keys,
    normalize_phone,
    record_feedback_updated,
)
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.db import Database, session_sql, utcnow, uuid7
from app.core.errors import AppError, Conflict, Forbidden, NotFound, validation_problem
from app.core.schemas import cursor_id, cursor_time, decode_cursor, encode_cursor
from app.feedback.classify import categorize, read_comment, sentiment_of
from app.feedback.identity import IdentitySecrets
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
    "customer_verified",
    "metric",
    "score",
    "comment",
    "tags",
    "touchpoint",
    "journey_stage",
    "attributes",
    "category",
    "sentiment",
    "sentiment_cues",
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
    "customer_verified": "boolean",
    "score": "smallint",
    "routing_rule_id": "uuid",
    "routing_rule_version": "integer",
    "tags": "text[]",
    "sentiment_cues": "text[]",
    "attributes": "jsonb",
    "submitted_at": "timestamptz",
    "received_at": "timestamptz",
}
_COLUMN_LIST = ", ".join(_INSERT_COLUMNS)
_READ_COLUMNS = (
    "id, source, channel, external_id, customer_external_id, customer_email, customer_phone, "
    "customer_name, customer_locale, contact_consent, customer_verified, metric, score, comment, "
    "tags, touchpoint, "
    "journey_stage, attributes, category, sentiment, sentiment_cues, submitted_at, received_at, "
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
    + " SELECT c.id AS case_id, c.number AS case_number, c.team AS case_team, "
    "c.status AS case_status FROM c"
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
_SELECT_FOR_UPDATE = (
    f"{_SELECT_FEEDBACK} WHERE feedback.source = $1 AND feedback.external_id = $2 "
    "FOR UPDATE OF feedback"
)
# What PUT replaces: the item's content and what follows from it. Its id, source, external id,
# API key and received time stay.
_REPLACED = (
    "channel",
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "customer_name",
    "customer_locale",
    "contact_consent",
    "customer_verified",
    "metric",
    "score",
    "comment",
    "tags",
    "touchpoint",
    "journey_stage",
    "attributes",
    "category",
    "sentiment",
    "sentiment_cues",
    "routing_rule_id",
    "routing_rule_version",
    "routing_team",
    "submitted_at",
    "request_hash",
)
_UPDATE_FEEDBACK = (
    "UPDATE feedback SET "
    + ", ".join(
        f"{c} = ${i}::{_COLUMN_TYPES.get(c, 'text')}" for i, c in enumerate(_REPLACED, start=2)
    )
    + " WHERE id = $1"
)
_SELECT_EXISTING = (
    f"{_SELECT_FEEDBACK} WHERE (feedback.api_key_id = $1 AND feedback.idempotency_key = $2) "
    "OR (feedback.source = $3 AND feedback.external_id = $4) "
    "ORDER BY (feedback.idempotency_key = $2) DESC NULLS LAST LIMIT 1"
)


def content_hash(payload: FeedbackCreate) -> str:
    """SHA-256 of what an item says, to tell a replay (same content) from a conflict.

    pydantic writes fields in a fixed order; attributes are a map, so their keys are sorted.
    """
    canonical = payload.model_dump_json(exclude={"attributes"}).encode() + orjson.dumps(
        payload.attributes, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


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
        cues: list[str] = []
    else:
        category_value = None
        reading = read_comment(payload.comment or "")
        sentiment, cues = reading.sentiment.value, reading.cues
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
        "customer_verified": True,
        "metric": payload.metric.value if payload.metric else None,
        "score": payload.score,
        "comment": comment,
        "tags": payload.tags,
        "touchpoint": payload.touchpoint,
        "journey_stage": payload.journey_stage.value if payload.journey_stage else None,
        "attributes": payload.attributes,
        "category": category_value,
        "sentiment": sentiment,
        "sentiment_cues": cues,
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
    """What an ingest answers: the item (or, to a key that may not read it, only its id)."""

    feedback: dict[str, Any]
    created: bool


def _new_row(
    payload: FeedbackCreate,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    row = derive(payload, settings, now)
    row["api_key_id"] = principal.key_id
    row["idempotency_key"] = idempotency_key
    row["request_hash"] = content_hash(payload)
    return row


async def ingest_feedback(
    database: Database,
    payload: FeedbackCreate,
    *,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> Ingested:
    """Store one item, routed when negative; a repeat of an earlier one answers that one."""
    _check_source(principal, payload.source)
    row = _new_row(payload, principal, idempotency_key, settings, utcnow())
    if payload.in_reply_to is not None:
        return await _ingest_followup(database, payload, row, principal, identities)
    async with database.raw() as conn:
        row["customer_verified"] = await identities.verified(
            conn, principal, payload.source, payload.customer
        )
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
        return await _replay(conn, payload, principal, idempotency_key, row)


_IDENTITY = ("customer_external_id", "customer_email", "customer_phone")
_CUSTOMER = (*_IDENTITY, "customer_name", "customer_locale", "customer_verified")


def _insert_values(row: dict[str, Any], document: dict[str, Any]) -> list[Any]:
    """The single-row statements' parameters: the columns, then the feedback.received body."""
    values = [row[c] for c in _INSERT_COLUMNS]
    values[_ATTRIBUTES] = json.dumps(row["attributes"], ensure_ascii=False)
    values.append(received_body(document, row["received_at"]))
    return values


async def _ingest_followup(
    database: Database,
    payload: FeedbackCreate,
    row: dict[str, Any],
    principal: Principal,
    identities: IdentitySecrets,
) -> Ingested:
    """Store a follow-up answer on its case: the item, its link, the case's event and messages
    commit together or not at all, so a wrong or used token leaves nothing behind."""
    assert payload.in_reply_to is not None
    claimed = any(row[column] for column in _IDENTITY)
    if claimed:
        async with database.raw() as conn:
            row["customer_verified"] = await identities.verified(
                conn, principal, payload.source, payload.customer
            )
    async with database.sessionmaker() as session:
        case = await accept_followup(
            session, payload.in_reply_to.case_id, payload.in_reply_to.token
        )
        if not claimed:
            # Sent from the follow-up link without saying who: the token says it is the case's
            # customer.
            row.update({column: getattr(case, column) for column in _CUSTOMER})
        values = _insert_values(row, feedback_document(row))
        stored = (await session_sql(session, _INSERT_ONE_PLAIN, *values)).scalar() is not None
        if stored:
            if case.followup_used_at is not None:
                raise Conflict("This follow-up link was already answered.", code="followup_used")
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
    if not stored:  # a repeat of an answer stored before: nothing was written
        async with database.raw() as conn:
            return await _replay(conn, payload, principal, row["idempotency_key"], row)
    return Ingested(feedback_document({**row, **summary}), created=True)


def replay_visible(principal: Principal, stored: asyncpg.Record | dict[str, Any]) -> bool:
    """Whether a replay may show the stored item: never to a publishable key (SPEC §7); to a
    trusted key that stored it or may read feedback."""
    if principal.publishable:
        return False
    return stored["api_key_id"] == principal.key_id or principal.has(Scope.FEEDBACK_READ)


def _conflict(stored: asyncpg.Record | dict[str, Any]) -> Conflict:
    return Conflict(
        f"Feedback `{stored['source']}`/`{stored['external_id']}` exists (id {stored['id']}) "
        "with other content. To change it, PUT /v1/feedback/{source}/{external_id}.",
        existing_id=stored["id"],
    )


async def _replay(
    conn: asyncpg.Connection,
    payload: FeedbackCreate,
    principal: Principal,
    idempotency_key: str | None,
    row: dict[str, Any],
) -> Ingested:
    """The item stored before under the same (source, external_id) or Idempotency-Key: the
    same content is a replay, other content a conflict."""
    stored = await conn.fetchrow(
        _SELECT_EXISTING, principal.key_id, idempotency_key, payload.source, payload.external_id
    )
    if stored is None:  # the conflicting row vanished (erased) between the two statements
        raise Conflict("The feedback conflicts with another request; retry.")
    # A row stored before content hashes were kept (null) is taken as the same content.
    different = stored["request_hash"] not in (None, row["request_hash"])
    if different and idempotency_key is not None and stored["idempotency_key"] == idempotency_key:
        raise Conflict(
            "This Idempotency-Key was already used with a different body.",
            code="idempotency_key_reused",
        )
    if different:
        raise _conflict(stored)
    if not replay_visible(principal, stored):
        return Ingested({"id": str(stored["id"]), "status": "replayed"}, created=False)
    return Ingested(feedback_document(stored), created=False)


def _item_problem(error: AppError) -> BatchItemResult:
    return BatchItemResult(
        status="error", problem=error.to_problem().model_dump(mode="json", exclude_none=True)
    )


@dataclass
class _BatchItem:
    index: int
    payload: FeedbackCreate
    row: dict[str, Any]


async def ingest_batch(
    database: Database,
    items: list[dict[str, Any]],
    *,
    principal: Principal,
    settings: Settings,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> list[BatchItemResult]:
    """Store each valid item of a batch in one statement; answer every item on its own."""
    results: list[BatchItemResult | None] = [None] * len(items)
    accepted: list[_BatchItem] = []
    first_of_key: dict[tuple[str, str], _BatchItem] = {}
    repeats: list[_BatchItem] = []
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
        entry = _BatchItem(index, payload, _new_row(payload, principal, None, settings, now))
        if payload.external_id is not None:
            key = (payload.source, payload.external_id)
            if key in first_of_key:
                repeats.append(entry)
                continue
            first_of_key[key] = entry
        accepted.append(entry)

    if accepted:
        async with database.raw() as conn, conn.transaction():
            valid = []
            for entry in accepted:
                try:
                    entry.row["customer_verified"] = await identities.verified(
                        conn, principal, entry.payload.source, entry.payload.customer
                    )
                except AppError as exc:
                    results[entry.index] = _item_problem(exc)
                    continue
                valid.append(entry)
            accepted = valid
            rows = [entry.row for entry in accepted]
            await _store_batch(conn, routing, rows, now)
        for entry in accepted:
            results[entry.index] = _batch_result(entry.row)
    for entry in repeats:
        assert entry.payload.external_id is not None
        first = first_of_key[(entry.payload.source, entry.payload.external_id)]
        earlier = results[first.index]
        assert earlier is not None
        if earlier.status != "error":
            # As if sent after the first: the item is now what the first one stored or found.
            stored = {**entry.row, "id": earlier.id, "request_hash": first.row["request_hash"]}
            results[entry.index] = _batch_result({**entry.row, "_existing": stored})
        elif first.row.get("_existing") is not None:
            # The first conflicted with the stored item: this one is judged against it too.
            results[entry.index] = _batch_result({**entry.row, "_existing": first.row["_existing"]})
        else:
            results[entry.index] = earlier
    return [r for r in results if r is not None]


async def _store_batch(
    conn: asyncpg.Connection, routing: RoutingCache, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Insert the rows in one statement and open or join their cases; mark each row with what
    became of it (`_stored`: inserted, else the row already there, as `_existing`)."""
    if not rows:
        return
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
    missing = [r for r in rows if r["id"] not in inserted]
    existing: dict[tuple[str, str], asyncpg.Record] = {}
    if missing:
        found = await conn.fetch(
            "SELECT id, source, external_id, request_hash FROM feedback "
            "WHERE (source, external_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [r["source"] for r in missing],
            [r["external_id"] for r in missing],
        )
        existing = {(f["source"], f["external_id"]): f for f in found}
    for row in rows:
        row["_stored"] = row["id"] in inserted
        if not row["_stored"]:
            row["_existing"] = existing.get((row["source"], row["external_id"]))


def _batch_result(row: dict[str, Any]) -> BatchItemResult:
    if row.get("_stored"):
        return BatchItemResult(status="created", id=row["id"])
    stored = row["_existing"]
    if stored is None:  # erased between the two statements
        return _item_problem(Conflict("The feedback conflicts with another request; retry."))
    if stored["request_hash"] not in (None, row["request_hash"]):
        return _item_problem(_conflict(stored))
    return BatchItemResult(status="replayed", id=stored["id"])


async def put_feedback(
    database: Database,
    payload: FeedbackCreate,
    *,
    principal: Principal,
    settings: Settings,
    routing: RoutingCache,
) -> Ingested:
    """Create the item, or replace what it says and re-derive, re-route and re-case it.

    Only the key that stored it or an admin may replace it; to any other key it does not exist.
    A change that makes it negative opens or joins a case; a change to an item on a case is on
    the case's timeline (`feedback_updated`), and leaves the case as it is.
    """
    _check_source(principal, payload.source)
    now = utcnow()
    row = _new_row(payload, principal, None, settings, now)
    async with database.raw() as conn, conn.transaction():
        stored = await conn.fetchrow(_SELECT_FOR_UPDATE, payload.source, payload.external_id)
        if stored is None:
            await _store_batch(conn, routing, [row], now)
            if row["_stored"]:
                return Ingested(await _read(conn, row["id"]), created=True)
            # Stored by another request meanwhile: replace that one.
            stored = await conn.fetchrow(_SELECT_FOR_UPDATE, payload.source, payload.external_id)
            assert stored is not None
        if stored["api_key_id"] != principal.key_id and not principal.has(Scope.ADMIN):
            raise _not_found()
        if stored["request_hash"] == row["request_hash"]:
            return Ingested(feedback_document(stored), created=False)
        row.update(
            id=stored["id"],
            submitted_at=payload.submitted_at or stored["submitted_at"],
            received_at=stored["received_at"],
        )
        cases = await _route(conn, routing, [row])
        await conn.execute(
            _UPDATE_FEEDBACK,
            row["id"],
            *(
                json.dumps(row[c], ensure_ascii=False) if c == "attributes" else row[c]
                for c in _REPLACED
            ),
        )
        if stored["case_id"] is not None:
            await record_feedback_updated(
                conn,
                stored["case_id"],
                row["id"],
                actor=principal.name,
                before=dict(stored),
                after=row,
                now=now,
            )
        elif row["id"] in cases:
            await conn.fetchrow(
                _OPEN_CASE, row["id"], row["source"], row["external_id"], *cases[row["id"]]
            )
        return Ingested(await _read(conn, row["id"]), created=False)


def _not_found() -> NotFound:
    return NotFound("No feedback has this id.", code="feedback_not_found")


async def _read(conn: asyncpg.Connection, feedback_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(f"{_SELECT_FEEDBACK} WHERE feedback.id = $1", feedback_id)
    if row is None:
        raise _not_found()
    return feedback_document(row)


async def get_feedback(
    database: Database, feedback_id: uuid.UUID, principal: Principal
) -> dict[str, Any]:
    """One item; one of a source the key may not read is not there for it."""
    async with database.raw() as conn:
        document = await _read(conn, feedback_id)
    if (
        principal.allowed_sources is not None
        and document["source"] not in principal.allowed_sources
    ):
        raise _not_found()
    return document


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
    database: Database,
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
