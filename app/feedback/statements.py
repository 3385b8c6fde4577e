"""The feedback room's hand-written SQL: the ingest hot path and the reads beside it.

Column lists and their types come from the SQLAlchemy table (`Feedback.__table__`), so a new
column is declared once, in app/feedback/models.py. The statements run on raw asyncpg (see
app/core/db.py): one stores an item and its feedback.received messages, `ON CONFLICT DO
NOTHING` makes it idempotent, and a batch is one statement over a JSON array, whatever its size.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.dialects import postgresql

from app.cases.intake import GROUP_COLUMNS, ITEM_COLUMNS, case_ctes, column_type, one_case
from app.cases.reads import item_case_sql
from app.feedback.models import Feedback
from app.notifications.outbox import any_endpoint_takes, outbox_insert

_TABLE = Feedback.__table__
# The stored columns, in the table's order: that of the single-row INSERT's parameters.
COLUMNS: tuple[str, ...] = tuple(c.name for c in _TABLE.c)
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_TYPES = {c.name: c.type.compile(dialect=_DIALECT) for c in _TABLE.c}
_COLUMN_LIST = ", ".join(COLUMNS)
_ATTRIBUTES = COLUMNS.index("attributes")

# Feedback with the case it opened or joined, if any.
_CASE_COLUMNS, _CASE_JOINS = item_case_sql("feedback")
SELECT_FEEDBACK = (
    "SELECT "
    + ", ".join(f"feedback.{c}" for c in COLUMNS)
    + f", {_CASE_COLUMNS} FROM feedback {_CASE_JOINS}"
)
SELECT_BY_ID = f"{SELECT_FEEDBACK} WHERE feedback.id = $1"

_RECEIVED_AT = f"${COLUMNS.index('received_at') + 1}::timestamptz"
_BODY = f"${len(COLUMNS) + 1}::bytea"
# One follow-up answer: stored, with its feedback.received messages, in one statement.
_INSERT_ONE_CTES = (
    f"WITH f AS (INSERT INTO feedback ({_COLUMN_LIST}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))}) "
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
INSERT_ONE_PLAIN = f"{_INSERT_ONE_CTES} SELECT id FROM f"
# What the case statements answer for each complaint: the case it opened or joined.
_CASE_ANSWER = (
    " SELECT i.id, cg.id AS case_id, cg.number AS case_number, cg.team AS case_team, "
    "cg.status AS case_status, cg.opened AND i.first AS opened FROM i JOIN cg ON cg.n = i.n"
)
# One stored negative item's case (PUT), from `case_values`' parameters after the item's.
OPEN_CASE = "WITH " + case_ctes(*one_case(4)) + _CASE_ANSWER
# Stored negative items' cases, in one statement whatever their number: the groups and the
# items of `case_sets`, as two JSON arrays.
OPEN_CASES = (
    "WITH "
    + case_ctes(
        "SELECT * FROM json_to_recordset($1::json) AS r("
        + ", ".join(f"{name} {column_type(name)}" for name in GROUP_COLUMNS)
        + ")",
        "SELECT * FROM json_to_recordset($2::json) AS r("
        + ", ".join(f"{name} {column_type(name)}" for name in ITEM_COLUMNS)
        + ")",
    )
    + _CASE_ANSWER
)
# A set of items in one statement, answering each one stored and whether an endpoint takes its
# feedback.received (`RECEIVED_MANY` then writes those messages: most of the time none does, and
# the bodies are never built). The rows come as one JSON array, read as `json` rather than
# `jsonb`: PostgreSQL takes a third less CPU to read it so (measured), and an array per column
# would cost asyncpg more to encode.
INSERT_MANY = (
    f"WITH f AS (INSERT INTO feedback ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "
    f"FROM json_to_recordset($1::json) AS r("
    + ", ".join(f"{c} {_TYPES[c]}" for c in COLUMNS)
    + ") ON CONFLICT DO NOTHING RETURNING id, source) "
    "SELECT f.id, "
    + any_endpoint_takes("'feedback.received'", "ARRAY[f.source]")
    + " AS received FROM f"
)
# The feedback.received messages of items just stored: (id, source, body) arrays.
RECEIVED_MANY = outbox_insert(
    event_type="'feedback.received'",
    body="b.body",
    case_id="NULL::uuid",
    sources="ARRAY[b.source]",
    now="$4::timestamptz",
    source_from="unnest($1::uuid[], $2::text[], $3::bytea[]) AS b(id, source, body)",
)
# What a set of items found already stored under their (source, external_id).
SELECT_STORED_KEYS = (
    "SELECT id, source, external_id, request_hash FROM feedback "
    "WHERE (source, external_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
)
SELECT_FOR_UPDATE = (
    f"{SELECT_FEEDBACK} WHERE feedback.source = $1 AND feedback.external_id = $2 "
    "FOR UPDATE OF feedback"
)
# What PUT replaces: the item's content and what follows from it. Its id, source, external id,
# API key, Idempotency-Key and received time stay.
_KEPT = ("id", "source", "external_id", "api_key_id", "idempotency_key", "received_at")
REPLACED = tuple(c for c in COLUMNS if c not in _KEPT)
UPDATE_FEEDBACK = (
    "UPDATE feedback SET "
    + ", ".join(f"{c} = ${i}::{_TYPES[c]}" for i, c in enumerate(REPLACED, start=2))
    + " WHERE id = $1"
)
# The negative feedback of a time range, oldest first, so a backtest that stops early has
# covered a time range.
SELECT_NEGATIVE_BETWEEN = (
    f"SELECT {_COLUMN_LIST} FROM feedback "
    "WHERE sentiment = 'negative' AND submitted_at >= $1 AND submitted_at < $2 "
    "ORDER BY submitted_at, id"
)
SELECT_EXISTING = (
    f"{SELECT_FEEDBACK} WHERE (feedback.api_key_id = $1 AND feedback.idempotency_key = $2) "
    "OR (feedback.source = $3 AND feedback.external_id = $4) "
    "ORDER BY (feedback.idempotency_key = $2) DESC NULLS LAST LIMIT 1"
)


def insert_values(row: dict[str, Any], body: bytes) -> list[Any]:
    """The single-row statements' parameters: the columns, then the feedback.received body."""
    values = [row[c] for c in COLUMNS]
    values[_ATTRIBUTES] = json.dumps(row["attributes"], ensure_ascii=False)
    values.append(body)
    return values


def update_values(row: dict[str, Any]) -> list[Any]:
    """UPDATE_FEEDBACK's parameters: the id, then the replaced columns."""
    return [
        row["id"],
        *(
            json.dumps(row[c], ensure_ascii=False) if c == "attributes" else row[c]
            for c in REPLACED
        ),
    ]
