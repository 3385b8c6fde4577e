"""Storing a set of derived rows: routed, inserted in one statement whatever their number,
their cases opened or joined, in the caller's transaction (services here never commit). A
batch, PUT and the group commit of single items (app/feedback/ingest.py) all store so; the
SQL is app/feedback/statements.py's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from app.cases.intake import case_sets, case_values, with_customer
from app.cases.linking import link_customers
from app.core.auth import Principal
from app.core.errors import Conflict
from app.core.metrics import count_cases_opened, count_stored_rows
from app.core.vocabulary import Sentiment
from app.feedback import statements as sql
from app.feedback.derive import routing_item
from app.feedback.reads import feedback_document, replay_visible
from app.notifications.outbox import envelope
from app.routing.evaluation import RoutingCache, ensure_default_team


@dataclass(frozen=True, slots=True)
class Ingested:
    """What an ingest answers: the item (or, to a key that may not read it, only its id)."""

    feedback: dict[str, Any]
    created: bool


def received_body(document: dict[str, Any], at: datetime) -> bytes:
    """The feedback.received message: the item as stored. (The case it opens or joins is
    told by case.opened, which carries the feedback ids.)"""
    data = {key: value for key, value in document.items() if key != "case"}
    return envelope("feedback.received", data, at)


async def route_rows(
    conn: asyncpg.Connection,
    routing: RoutingCache,
    rows: list[dict[str, Any]],
    *,
    cases_since: datetime | None = None,
) -> dict[uuid.UUID, list[Any]]:
    """Give each negative row its team, and the rule and version that chose it; answer the
    parameters of each one's case statement, by feedback id: of every negative row, or with
    `cases_since` (an import of history) of those submitted since then only, the older ones
    routed (their team counts in reports) but opening no case. The fallback team, if it has to
    be made, is made in the caller's transaction."""
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
        if cases_since is None or row["submitted_at"] >= cases_since:
            cases[row["id"]] = case_values(row, case)
    return cases


def _in_text(value: Any) -> str:
    # A time in UTC: PostgreSQL reads no offset beyond ±15:59, which ISO 8601 (and so the API)
    # allows; the instant is the same.
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def _recordset(rows: list[dict[str, Any]]) -> str:
    """The rows as the JSON array `INSERT_MANY` reads."""
    try:
        return orjson.dumps(rows, default=_in_text, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:  # an integer in attributes beyond 64 bits
        return json.dumps(rows, default=_in_text, ensure_ascii=False)


async def store_rows(
    conn: asyncpg.Connection,
    routing: RoutingCache,
    rows: list[dict[str, Any]],
    now: datetime,
    *,
    documents: bool = False,
    cases_since: datetime | None = None,
    savepoints: bool = True,
) -> list[dict[str, Any]]:
    """Route the rows, insert them in one statement and open or join their cases; mark each
    row with what became of it (`_stored`: inserted, else the row already there, as
    `_existing`; `_case`: the case a stored negative row opened or joined, as its statement
    answered it). With `documents`, answers each row's document as stored (without its case).
    With `cases_since`, rows submitted before it open no case (`route_rows`). Without
    `savepoints`, the caller runs the transaction again on `LinkingRaced` or a deadlock
    (`link_customers`).

    The feedback.received bodies are built only for the rows an endpoint takes them of, as the
    insert itself reads the endpoints, and their messages written by the next statement (still
    before the case.opened ones): an endpoint enabled after the insert gets none of these items,
    as if enabled just after they were stored.
    """
    if not rows:
        return []
    cases = await route_rows(conn, routing, rows, cases_since=cases_since)
    stored = await conn.fetch(sql.INSERT_MANY, _recordset(rows))
    inserted = {r["id"] for r in stored}
    by_id = {r["id"]: r for r in rows}
    answers = [feedback_document(r) for r in rows] if documents else []
    received = [by_id[r["id"]] for r in stored if r["received"]]
    if received:
        built = {r["id"]: d for r, d in zip(rows, answers, strict=False)}  # none without documents
        await conn.execute(
            sql.RECEIVED_MANY,
            [r["id"] for r in received],
            [r["source"] for r in received],
            [
                received_body(built.get(r["id"]) or feedback_document(r), r["received_at"])
                for r in received
            ],
            now,
        )
    customers = await link_customers(
        conn, [r for r in rows if r["id"] in inserted], savepoints=savepoints
    )
    # Cases in one order (team, customer), which every writer keeps, so that two transactions
    # joining the same customers' cases wait for each other rather than deadlock. The sort is
    # stable: of one customer's complaints the first sent opens the case, the others join it,
    # all in one statement.
    negative = sorted(
        (by_id[fid] for fid in cases if fid in inserted),
        key=lambda r: (r["routing_team"], customers.get(r["id"], "")),
    )
    if negative:
        groups, items = case_sets(
            [
                (
                    r["id"],
                    r["source"],
                    r["external_id"],
                    with_customer(cases[r["id"]], customers.get(r["id"])),
                )
                for r in negative
            ]
        )
        answered = await conn.fetch(sql.OPEN_CASES, groups, items)
        count_cases_opened(answered)
        for case in answered:
            by_id[case["id"]]["_case"] = case
    missing = [r for r in rows if r["id"] not in inserted]
    existing: dict[tuple[str, str], asyncpg.Record] = {}
    if missing:
        found = await conn.fetch(
            sql.SELECT_STORED_KEYS,
            [r["source"] for r in missing],
            [r["external_id"] for r in missing],
        )
        existing = {(f["source"], f["external_id"]): f for f in found}
    for row in rows:
        row["_stored"] = row["id"] in inserted
        if not row["_stored"]:
            row["_existing"] = existing.get((row["source"], row["external_id"]))
    count_stored_rows(rows)
    return answers if documents else []


def conflict(stored: asyncpg.Record | dict[str, Any]) -> Conflict:
    return Conflict(
        f"Feedback `{stored['source']}`/`{stored['external_id']}` exists (id {stored['id']}) "
        "with other content. To change it, PUT /v1/feedback/{source}/{external_id}.",
        existing_id=stored["id"],
    )


def judge_replay(
    stored: Any, principal: Principal, idempotency_key: str | None, row: dict[str, Any]
) -> Ingested:
    """The same content is a replay, other content a conflict."""
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
        raise conflict(stored)
    if not replay_visible(principal, stored):
        return Ingested({"id": str(stored["id"]), "status": "replayed"}, created=False)
    return Ingested(feedback_document(stored), created=False)
