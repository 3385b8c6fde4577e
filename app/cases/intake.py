"""Negative feedback becomes a case in the statement that stores it (SPEC §4).

On the ingest hot path, so raw SQL: the case is opened, or the customer's active case with that
team is joined, by one `INSERT ... ON CONFLICT DO UPDATE` against the unique index of active
cases per (team, customer). Two complaints arriving at once therefore cannot open two cases,
and the link and the timeline event are written by the same statement, so a crash leaves either
all of it or none.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from app.cases.identity import customer_identities
from app.cases.messages import case_block
from app.core.db import uuid7
from app.notifications.outbox import outbox_insert, utc_text
from app.routing.service import team_sla_sql

# Most urgent first: queues sort by this ascending, with an index.
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}

# Parameters of the case statement, in order, after those of whatever comes before it.
_PARAMS = (
    "case_id",
    "event_id",
    "priority",
    "priority_rank",
    "team",
    "assignee",
    "customer_key",
    "customer_keys",
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "customer_name",
    "customer_locale",
    "contact_consent",
    "customer_verified",
    "can_notify",
    "tags",
    "rule_id",
    "rule_version",
    "now",
)
_TYPES = {
    "case_id": "uuid",
    "event_id": "uuid",
    "priority_rank": "smallint",
    "customer_keys": "text[]",
    "contact_consent": "boolean",
    "customer_verified": "boolean",
    "can_notify": "boolean",
    "tags": "text[]",
    "rule_id": "uuid",
    "rule_version": "integer",
    "now": "timestamptz",
}


def case_ctes(first: int, feedback: str) -> str:
    """The CTEs `c` (the case opened or joined), `l` (the link) and `e` (the event), for the
    feedback rows of CTE `feedback`; their parameters are numbered from `first`."""
    p = {name: f"${first + i}::{_TYPES.get(name, 'text')}" for i, name in enumerate(_PARAMS)}
    return f"""
c AS (
    INSERT INTO feedback_case (
        id, status, priority, priority_rank, team, opened_for_team, assignee,
        customer_key, customer_keys, customer_external_id, customer_email, customer_phone,
        customer_name, customer_locale, contact_consent, customer_verified, can_notify, tags,
        rule_id, rule_version,
        first_response_due_at, resolution_due_at, version, created_at, updated_at
    )
    SELECT {p["case_id"]}, 'open', {p["priority"]}, {p["priority_rank"]}, t.key, t.key,
        {p["assignee"]}, {p["customer_key"]}, {p["customer_keys"]}, {p["customer_external_id"]},
        {p["customer_email"]}, {p["customer_phone"]}, {p["customer_name"]},
        {p["customer_locale"]}, {p["contact_consent"]}, {p["customer_verified"]},
        {p["can_notify"]}, {p["tags"]},
        {p["rule_id"]}, {p["rule_version"]},
        {p["now"]} + make_interval(mins => t.first_response_minutes),
        {p["now"]} + make_interval(mins => t.resolution_minutes),
        1, {p["now"]}, {p["now"]}
    FROM {feedback} f, ({team_sla_sql(p["team"])}) t
    ON CONFLICT (opened_for_team, customer_key)
        WHERE status IN ('open', 'in_progress', 'waiting_on_customer')
        AND customer_key IS NOT NULL
    DO UPDATE SET
        version = feedback_case.version + 1,
        updated_at = EXCLUDED.updated_at,
        priority = CASE WHEN EXCLUDED.priority_rank < feedback_case.priority_rank
            THEN EXCLUDED.priority ELSE feedback_case.priority END,
        priority_rank = LEAST(EXCLUDED.priority_rank, feedback_case.priority_rank),
        tags = ARRAY(
            SELECT tag FROM unnest(feedback_case.tags || EXCLUDED.tags) WITH ORDINALITY AS u(tag, n)
            GROUP BY tag ORDER BY min(n)
        ),
        customer_keys = ARRAY(
            SELECT DISTINCT k FROM unnest(feedback_case.customer_keys || EXCLUDED.customer_keys) k
        ),
        -- A joining item fills in what the case lacks, never overwrites a contact or the
        -- consent: those change only by an explicit, recorded edit (PATCH /v1/cases/{{id}}).
        customer_external_id =
            COALESCE(feedback_case.customer_external_id, EXCLUDED.customer_external_id),
        customer_email = COALESCE(feedback_case.customer_email, EXCLUDED.customer_email),
        customer_phone = COALESCE(feedback_case.customer_phone, EXCLUDED.customer_phone),
        customer_name = COALESCE(feedback_case.customer_name, EXCLUDED.customer_name),
        customer_locale = COALESCE(feedback_case.customer_locale, EXCLUDED.customer_locale)
    RETURNING feedback_case.*, (xmax = 0) AS opened
),
l AS (
    INSERT INTO case_feedback (feedback_id, case_id, kind, added_at, source, external_id)
    SELECT f.id, c.id, CASE WHEN c.opened THEN 'opened' ELSE 'joined' END, {p["now"]},
        f.source, f.external_id
    FROM {feedback} f, c
),
e AS (
    INSERT INTO case_event (id, case_id, type, actor, at, data)
    SELECT {p["event_id"]}, c.id, CASE WHEN c.opened THEN 'created' ELSE 'feedback_added' END,
        'routing', {p["now"]},
        jsonb_build_object('feedback_id', f.id, 'team', c.team, 'rule_id', {p["rule_id"]},
            'rule_version', {p["rule_version"]})
    FROM {feedback} f, c
),
co AS ({_case_opened(feedback, p["now"])})"""


def _case_opened(feedback: str, now: str) -> str:
    """SQL: the case.opened messages of a case the statement opened (not of one it joined)."""
    data = case_block(
        "c",
        "jsonb_build_array(jsonb_build_object("
        "'id', f.id, 'source', f.source, 'external_id', f.external_id))",
    )
    envelope = (
        f"jsonb_build_object('type', 'case.opened', 'timestamp', {utc_text(now)}, "
        f"'data', jsonb_build_object('case', {data}))"
    )
    return outbox_insert(
        event_type="'case.opened'",
        body=f"convert_to({envelope}::text, 'UTF8')",
        case_id="c.id",
        sources="ARRAY[f.source]",
        now=now,
        source_from=f"c JOIN {feedback} f ON c.opened",
    )


def case_values(row: Mapping[str, Any], case: Mapping[str, Any]) -> list[Any]:
    """The case statement's parameters for a routed feedback row (stored column names) and
    what routing decided for its case (`priority`, `assignee`, `tags`), without the key it joins
    on: that is the customer's, known once the row's identities are linked (`with_customer`).
    """
    keys = [value for _, value in customer_identities(row)]
    values = {
        "case_id": uuid7(),
        "event_id": uuid7(),
        "priority": case["priority"],
        "priority_rank": PRIORITY_RANK[case["priority"]],
        "team": row["routing_team"],
        "assignee": case["assignee"],
        "customer_key": None,
        "customer_keys": keys,
        "customer_external_id": row["customer_external_id"],
        "customer_email": row["customer_email"],
        "customer_phone": row["customer_phone"],
        "customer_name": row["customer_name"],
        "customer_locale": row["customer_locale"],
        "contact_consent": row["contact_consent"],
        "customer_verified": row["customer_verified"],
        "can_notify": bool(keys),
        "tags": list(case["tags"]),
        "rule_id": row["routing_rule_id"],
        "rule_version": row["routing_rule_version"],
        "now": row["received_at"],
    }
    return [values[name] for name in _PARAMS]


_KEY = _PARAMS.index("customer_key")


def with_customer(values: list[Any], customer_key: str | None) -> list[Any]:
    """The case statement's parameters, joining the customer's active case with the team: the
    key of their customer record (app/cases/linking.py). An item without one (anonymous, or a
    claimed identity) opens a case of its own, which nothing joins."""
    return [*values[:_KEY], customer_key, *values[_KEY + 1 :]]


# What the event tells of the change (a comment's text is not copied: only that it changed).
_UPDATED_FIELDS = ("metric", "score", "category", "sentiment")


async def record_feedback_updated(
    conn: asyncpg.Connection,
    case_id: uuid.UUID,
    feedback_id: uuid.UUID,
    *,
    actor: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    now: datetime,
) -> None:
    """An item on the case was replaced (PUT): the timeline says what it says now. The case
    itself stays as it is, open or not: an agent decides what the change means."""
    changed = {
        name: {"from": before[name], "to": after[name]}
        for name in _UPDATED_FIELDS
        if before[name] != after[name]
    }
    await conn.execute(
        "INSERT INTO case_event (id, case_id, type, actor, at, data) "
        "VALUES ($1, $2, 'feedback_updated', $3, $4, $5::jsonb)",
        uuid7(),
        case_id,
        actor,
        now,
        json.dumps(
            {
                "feedback_id": str(feedback_id),
                "changes": changed,
                "comment_changed": before["comment"] != after["comment"],
            }
        ),
    )
