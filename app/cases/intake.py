"""Negative feedback becomes a case (SPEC §4).

On the ingest hot path, so raw SQL: the case is opened, or the customer's active case with that
team is joined, by one `INSERT ... ON CONFLICT DO UPDATE` against the unique index of active
cases per (team, customer). Two complaints arriving at once therefore cannot open two cases,
and the links and the timeline events are written by the same statement, so a crash leaves
either all of it or none. A set of complaints (a batch, a group of single items) costs that one
statement whatever its size.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.cases.identity import customer_identities
from app.cases.messages import case_block
from app.core.db import uuid7
from app.notifications.outbox import outbox_insert, utc_text
from app.routing.schemas import PRIORITY_RANK
from app.routing.service import team_sla_sql

# Parameters of the case statement of one item (`OPEN_CASE`), in order, after those of
# whatever comes before it: what `case_values` answers.
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
    "n": "integer",
    "first": "boolean",
    "opened_at": "timestamptz",
    "updated_at": "timestamptz",
    "items": "integer",
    "at": "timestamptz",
    "id": "uuid",
}
# What the case of a group of complaints says as the first one opens it: what case.opened tells.
_AS_OPENED = (
    "priority",
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "customer_name",
    "customer_locale",
)
# The relation `g` of `case_ctes`: a case to open or join (one per team and customer, and one
# per complaint without a customer), `n` its place in the lock order, `opened_at` and
# `updated_at` the times of its first and last complaints, `items` their number, `first_*`
# the case as its first complaint opens it; the rest as a single complaint's.
GROUP_COLUMNS = (
    "n",
    *(name for name in _PARAMS if name not in ("event_id", "now")),
    "opened_at",
    "updated_at",
    "items",
    *(f"first_{name}" for name in _AS_OPENED),
)
# The relation `i`: each complaint (its feedback's id, source and external id), the group it
# belongs to, whether it comes first in it, and its own event.
ITEM_COLUMNS = (
    "id",
    "source",
    "external_id",
    "n",
    "first",
    "event_id",
    "rule_id",
    "rule_version",
    "at",
)


def column_type(name: str) -> str:
    return _TYPES.get(name.removeprefix("first_"), "text")


def case_ctes(groups: str, items: str) -> str:
    """The CTEs `c` (the cases opened or joined), `cg` (each with the number `n` of its group),
    `l` (the links), `e` (the events) and `co` (the case.opened messages), for the relations
    `groups` (`GROUP_COLUMNS`) and `items` (`ITEM_COLUMNS`): one statement whatever the number
    of complaints.

    A case row is touched once per statement (ON CONFLICT DO UPDATE can touch a row only once),
    so the complaints of one team and customer come grouped, and the case ends as it would
    after one statement per complaint in their order: the first opens it (or joins the active
    one), each one after bumps the version and brings its priority, tags, identities and the
    contacts the case lacks. Cases are written in the order of `n`, which every writer keeps
    (team, then customer), so that two transactions joining the same customers' cases wait for
    each other rather than deadlock.
    """
    return f"""
g AS MATERIALIZED ({groups}),
i AS MATERIALIZED ({items}),
c AS (
    INSERT INTO feedback_case (
        id, status, priority, priority_rank, team, opened_for_team, assignee,
        customer_key, customer_keys, customer_external_id, customer_email, customer_phone,
        customer_name, customer_locale, contact_consent, customer_verified, can_notify, tags,
        rule_id, rule_version,
        first_response_due_at, resolution_due_at, version, created_at, updated_at
    )
    SELECT g.case_id, 'open', g.priority, g.priority_rank, t.key, t.key,
        g.assignee, g.customer_key, g.customer_keys, g.customer_external_id,
        g.customer_email, g.customer_phone, g.customer_name,
        g.customer_locale, g.contact_consent, g.customer_verified,
        g.can_notify, g.tags, g.rule_id, g.rule_version,
        g.opened_at + make_interval(mins => t.first_response_minutes),
        g.opened_at + make_interval(mins => t.resolution_minutes),
        g.items, g.opened_at, g.updated_at
    FROM g, LATERAL ({team_sla_sql("g.team")}) t
    ORDER BY g.n
    ON CONFLICT (opened_for_team, customer_key)
        WHERE status IN ('open', 'in_progress', 'waiting_on_customer')
        AND customer_key IS NOT NULL
    DO UPDATE SET
        version = feedback_case.version + EXCLUDED.version,
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
-- Each case with its group: the one it opened (its id), else the active one of the group's
-- team and customer it joined (a customer's, as a case without one is never joined).
cg AS (
    SELECT g.n, c.* FROM c JOIN g ON c.opened_for_team = g.team
        AND COALESCE(c.customer_key, c.id::text) = COALESCE(g.customer_key, g.case_id::text)
),
l AS (
    INSERT INTO case_feedback (feedback_id, case_id, kind, added_at, source, external_id)
    SELECT i.id, cg.id, CASE WHEN cg.opened AND i.first THEN 'opened' ELSE 'joined' END, i.at,
        i.source, i.external_id
    FROM i JOIN cg ON cg.n = i.n
),
e AS (
    INSERT INTO case_event (id, case_id, type, actor, at, data)
    SELECT i.event_id, cg.id,
        CASE WHEN cg.opened AND i.first THEN 'created' ELSE 'feedback_added' END,
        'routing', i.at,
        jsonb_build_object('feedback_id', i.id, 'team', cg.team, 'rule_id', i.rule_id,
            'rule_version', i.rule_version)
    FROM i JOIN cg ON cg.n = i.n
),
co AS ({_case_opened()})"""


def _case_opened() -> str:
    """SQL: the case.opened messages of the cases the statement opened (not of those joined),
    each telling the case as its first complaint opened it, that complaint its one item."""
    opened = (
        "(SELECT cg.id, cg.number, cg.status, cg.team, cg.assignee, cg.contact_consent, "
        "cg.customer_verified, 1 AS version, cg.created_at, g.opened_at AS updated_at, "
        + ", ".join(f"g.first_{name} AS {name}" for name in _AS_OPENED)
        + ", i.id AS feedback_id, i.source, i.external_id "
        "FROM cg JOIN g ON g.n = cg.n JOIN i ON i.n = cg.n AND i.first WHERE cg.opened) o"
    )
    data = case_block(
        "o",
        "jsonb_build_array(jsonb_build_object("
        "'id', o.feedback_id, 'source', o.source, 'external_id', o.external_id))",
    )
    envelope = (
        f"jsonb_build_object('type', 'case.opened', 'timestamp', {utc_text('o.created_at')}, "
        f"'data', jsonb_build_object('case', {data}))"
    )
    return outbox_insert(
        event_type="'case.opened'",
        body=f"convert_to({envelope}::text, 'UTF8')",
        case_id="o.id",
        sources="ARRAY[o.source]",
        now="o.created_at",
        source_from=opened,
    )


def one_case(first: int) -> tuple[str, str]:
    """The relations `g` and `i` of `case_ctes` for one complaint, from the parameters
    `$1` (feedback id), `$2` (source), `$3` (external id) and `case_values`' from `first` on."""
    p = {name: f"${first + i}::{column_type(name)}" for i, name in enumerate(_PARAMS)}
    group = {
        **{name: p.get(name) for name in GROUP_COLUMNS},
        "n": "0",
        "opened_at": p["now"],
        "updated_at": p["now"],
        "items": "1",
        **{f"first_{name}": p[name] for name in _AS_OPENED},
    }
    item = {
        "id": "$1::uuid",
        "source": "$2::text",
        "external_id": "$3::text",
        "n": "0",
        "first": "true",
        "event_id": p["event_id"],
        "rule_id": p["rule_id"],
        "rule_version": p["rule_version"],
        "at": p["now"],
    }
    return (
        "SELECT " + ", ".join(f"{group[name]} AS {name}" for name in GROUP_COLUMNS),
        "SELECT " + ", ".join(f"{item[name]} AS {name}" for name in ITEM_COLUMNS),
    )


def case_sets(complaints: list[tuple[uuid.UUID, str, str | None, list[Any]]]) -> tuple[str, str]:
    """The relations `g` and `i` of `case_ctes` as two JSON arrays, for stored complaints
    (feedback id, source, external id, `with_customer`'s parameters) in the lock order (team,
    then customer): those of one team and customer, one after the other, go to one group."""
    groups: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for feedback_id, source, external_id, values in complaints:
        case = dict(zip(_PARAMS, values, strict=True))
        key = case["customer_key"]
        group = last.get((case["team"], key)) if key is not None else None
        first = group is None
        if group is None:
            group = {name: case.get(name) for name in GROUP_COLUMNS}
            group.update(
                n=len(groups),
                opened_at=case["now"],
                updated_at=case["now"],
                items=1,
                **{f"first_{name}": case[name] for name in _AS_OPENED},
            )
            groups.append(group)
            if key is not None:
                last[(case["team"], key)] = group
        else:
            _join(group, case)
        items.append(
            {
                "id": feedback_id,
                "source": source,
                "external_id": external_id,
                "n": group["n"],
                "first": first,
                "event_id": case["event_id"],
                "rule_id": case["rule_id"],
                "rule_version": case["rule_version"],
                "at": case["now"],
            }
        )
    return _json(groups), _json(items)


def _join(group: dict[str, Any], case: dict[str, Any]) -> None:
    """A group's case once another complaint joins it, as the statement's DO UPDATE would leave
    it (on a fresh case the DO UPDATE happens here, since a statement inserts a row once)."""
    group["items"] += 1
    group["updated_at"] = case["now"]
    if case["priority_rank"] < group["priority_rank"]:
        group["priority"], group["priority_rank"] = case["priority"], case["priority_rank"]
    group["tags"] = list(dict.fromkeys([*group["tags"], *case["tags"]]))
    group["customer_keys"] = list(dict.fromkeys([*group["customer_keys"], *case["customer_keys"]]))
    for name in _AS_OPENED[1:]:
        if group[name] is None:
            group[name] = case[name]


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, default=str).decode()


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
        # A claimed identity is anyone's to type (SPEC §7): the company's mailer is not theirs
        # to aim. An agent who checked the details sets them (PATCH customer), which may.
        "can_notify": bool(keys) and bool(row["customer_verified"]),
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


async def record_feedback_updated(
    conn: asyncpg.Connection,
    case_id: uuid.UUID,
    feedback_id: uuid.UUID,
    *,
    actor: str,
    changes: Mapping[str, Mapping[str, Any]],
    changed: Sequence[str],
    now: datetime,
) -> None:
    """An item on the case was replaced (PUT): the timeline says what changed. `changed` names
    every field of the item that did (`score`, `customer.email`, `attributes.plan`); `changes`
    holds the values, from and to, of those whose values it may keep (what the item counts as,
    not who sent it or what they wrote: app/feedback/ingest.py's `item_changes` tells them
    apart), and `comment_changed` says whether the comment did. The case itself stays as it
    is, open or not: an agent decides what the change means."""
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
                "changes": changes,
                "comment_changed": "comment" in changed,
                "changed": list(changed),
            }
        ),
    )
