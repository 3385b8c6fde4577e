"""Storing feedback: one item, a batch, a follow-up answer, a replacement (PUT).

Every path derives rows (app/feedback/derive.py), routes the negative ones (`route_rows`) and
stores them with the statements of app/feedback/statements.py, in the request's one
transaction: services here never commit. A set of rows is stored by `store_rows`, one statement
whatever its size, which a batch, PUT, and the group commit of single items use alike. Single
items are the exception to the request's transaction: concurrent requests' items are written
together, in the transaction of their group (`write_group`, app/feedback/group.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.followups import accept_followup, record_followup
from app.cases.intake import case_values, record_feedback_updated, with_customer
from app.cases.linking import link_customers
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.db import Database, RawTransaction, session_sql, utcnow
from app.core.errors import AppError, Conflict, validation_problem
from app.core.metrics import count_stored_rows
from app.core.vocabulary import Sentiment
from app.feedback import statements as sql
from app.feedback.derive import check_source, new_row, routing_item
from app.feedback.group import GroupCommit
from app.feedback.identity import IdentitySecrets
from app.feedback.reads import (
    case_summary,
    feedback_document,
    feedback_not_found,
    read_feedback,
    replay_visible,
)
from app.feedback.schemas import BatchItemResult, FeedbackCreate
from app.notifications.outbox import any_subscribed, envelope
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
    conn: asyncpg.Connection, routing: RoutingCache, rows: list[dict[str, Any]]
) -> dict[uuid.UUID, list[Any]]:
    """Give each negative row its team, and the rule and version that chose it; answer the
    parameters of each one's case statement, by feedback id. The fallback team, if it has to
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
        cases[row["id"]] = case_values(row, case)
    return cases


async def ingest_feedback(
    payload: FeedbackCreate,
    *,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    groups: IngestGroups,
) -> Ingested:
    """Store one item, routed when negative; a repeat of an earlier one answers that one.

    The item is derived here and written by the process's group commit with the items other
    requests send meanwhile (`write_group`); this returns once it is committed.
    """
    check_source(principal, payload.source)
    row = new_row(payload, principal, idempotency_key, settings, utcnow())
    return await groups.submit(_Pending(payload, principal, idempotency_key, row))


@dataclass(frozen=True, slots=True)
class _Pending:
    """One request's item, derived, waiting for its group."""

    payload: FeedbackCreate
    principal: Principal
    idempotency_key: str | None
    row: dict[str, Any]


IngestGroups = GroupCommit[_Pending, Ingested]


def ingest_groups(
    database: Database,
    *,
    settings: Settings,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> IngestGroups:
    """The process's group commit for single-item ingest (FEEDBACK_INGEST_GROUP_*)."""

    async def write(group: list[_Pending]) -> list[Ingested | Exception]:
        return await write_group(database, group, routing=routing, identities=identities)

    return GroupCommit(
        write,
        max_items=settings.ingest_group_max,
        wait_s=settings.ingest_group_wait_ms / 1000,
    )


async def write_group(
    database: Database,
    group: list[_Pending],
    *,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> list[Ingested | Exception]:
    """Write the items of several requests in one transaction, by `store_rows`, and answer each
    as a request of its own would have been answered: created (with its case), a replay of the
    item stored before under its key (in this group too), or its own error.

    The group commit is the one commit point of these requests (as the request's dependency is
    for the others): their transaction is this one, not the request's. An item whose key
    another item of the group took first is judged against that one by `_replay`, in this
    transaction, as if it had been sent after it.
    """
    # (Its size reaches the metrics through store_rows: closeloop_ingest_group_size.)
    outcomes: list[Ingested | Exception | None] = [None] * len(group)
    async with database.raw() as conn, conn.transaction():
        written: list[int] = []
        for index, pending in enumerate(group):
            try:
                pending.row["customer_verified"] = await identities.verified(
                    conn, pending.principal, pending.payload.source, pending.payload.customer
                )
            except AppError as exc:
                outcomes[index] = exc
                continue
            written.append(index)
        rows = [group[index].row for index in written]
        documents = await store_rows(conn, routing, rows, utcnow(), documents=True)
        cased = [row["id"] for row in rows if row["_stored"] and row["routing_team"] is not None]
        cases = {}
        if cased:
            cases = {r["feedback_id"]: r for r in await conn.fetch(sql.CASE_SUMMARIES, cased)}
        for index, row, document in zip(written, rows, documents, strict=True):
            if row["_stored"]:
                case = cases.get(row["id"])
                document["case"] = None if case is None else case_summary(case)
                outcomes[index] = Ingested(document, created=True)
                continue
            pending = group[index]
            try:
                outcomes[index] = await _replay(
                    conn, pending.payload, pending.principal, pending.idempotency_key, row
                )
            except AppError as exc:
                outcomes[index] = exc
    return [outcome for outcome in outcomes if outcome is not None]


_IDENTITY = ("customer_external_id", "customer_email", "customer_phone")
_CUSTOMER = (*_IDENTITY, "customer_name", "customer_locale", "customer_verified")


async def ingest_followup(
    session: AsyncSession,
    payload: FeedbackCreate,
    *,
    principal: Principal,
    idempotency_key: str | None,
    settings: Settings,
    identities: IdentitySecrets,
) -> Ingested:
    """Store a follow-up answer on its case: the item, its link, the case's event and messages
    are in the session's one transaction, so a wrong or used token leaves nothing behind."""
    assert payload.in_reply_to is not None
    check_source(principal, payload.source)
    row = new_row(payload, principal, idempotency_key, settings, utcnow())
    claimed = any(row[column] for column in _IDENTITY)
    if claimed:
        row["customer_verified"] = await identities.verified(
            session, principal, payload.source, payload.customer
        )
    case = await accept_followup(session, payload.in_reply_to.case_id, payload.in_reply_to.token)
    if not claimed:
        # Sent from the follow-up link without saying who: the token says it is the case's
        # customer.
        row.update({column: getattr(case, column) for column in _CUSTOMER})
    values = sql.insert_values(row, received_body(feedback_document(row), row["received_at"]))
    if (await session_sql(session, sql.INSERT_ONE_PLAIN, *values)).scalar() is None:
        # A repeat of an answer stored before: nothing was written.
        stored = (
            (
                await session_sql(
                    session,
                    sql.SELECT_EXISTING,
                    principal.key_id,
                    idempotency_key,
                    payload.source,
                    payload.external_id,
                )
            )
            .mappings()
            .first()
        )
        return _judge_replay(stored, principal, idempotency_key, row)
    if case.followup_used_at is not None:
        raise Conflict("This follow-up link was already answered.", code="followup_used")
    await record_followup(session, case, row["id"], sentiment=row["sentiment"], score=row["score"])
    summary = {
        "case_id": case.id,
        "case_number": case.number,
        "case_team": case.team,
        "case_status": case.status,
    }
    return Ingested(feedback_document({**row, **summary}), created=True)


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
    """The item stored before under the same (source, external_id) or Idempotency-Key."""
    stored = await conn.fetchrow(
        sql.SELECT_EXISTING, principal.key_id, idempotency_key, payload.source, payload.external_id
    )
    return _judge_replay(stored, principal, idempotency_key, row)


def _judge_replay(
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


@dataclass
class PreparedBatch:
    """A batch validated and derived, before it meets the database (`prepare_batch`)."""

    size: int
    # The answers known already: each invalid item's problem, by its index.
    results: dict[int, BatchItemResult]
    accepted: list[_BatchItem]
    # Items naming a (source, external_id) an earlier item of the batch named.
    repeats: list[_BatchItem]
    first_of_key: dict[tuple[str, str], _BatchItem]
    now: datetime


def prepare_batch(
    items: list[dict[str, Any]], *, principal: Principal, settings: Settings, now: datetime
) -> PreparedBatch:
    """Validate and derive each item of a batch: pure work, no I/O, so that `closeloop import`
    can prepare the next chunk in a thread while the database stores this one."""
    prepared = PreparedBatch(len(items), {}, [], [], {}, now)
    for index, item in enumerate(items):
        try:
            payload = FeedbackCreate.model_validate(item)
            check_source(principal, payload.source)
        except ValidationError as exc:
            prepared.results[index] = _item_problem(validation_problem(exc))
            continue
        except AppError as exc:
            prepared.results[index] = _item_problem(exc)
            continue
        entry = _BatchItem(index, payload, new_row(payload, principal, None, settings, now))
        if payload.external_id is not None:
            key = (payload.source, payload.external_id)
            if key in prepared.first_of_key:
                prepared.repeats.append(entry)
                continue
            prepared.first_of_key[key] = entry
        prepared.accepted.append(entry)
    return prepared


async def ingest_batch(
    raw: RawTransaction,
    items: list[dict[str, Any]],
    *,
    principal: Principal,
    settings: Settings,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> list[BatchItemResult]:
    """Store each valid item of a batch in one statement; answer every item on its own."""
    prepared = prepare_batch(items, principal=principal, settings=settings, now=utcnow())
    return await store_batch(
        raw, prepared, principal=principal, routing=routing, identities=identities
    )


async def store_batch(
    raw: RawTransaction,
    prepared: PreparedBatch,
    *,
    principal: Principal,
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> list[BatchItemResult]:
    """Store the valid items of a prepared batch in one statement; answer every item."""
    results: list[BatchItemResult | None] = [None] * prepared.size
    for index, problem in prepared.results.items():
        results[index] = problem
    accepted = prepared.accepted
    if accepted:
        conn = await raw.connection()
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
        await store_rows(conn, routing, [entry.row for entry in accepted], prepared.now)
        for entry in accepted:
            results[entry.index] = _batch_result(entry.row)
    for entry in prepared.repeats:
        assert entry.payload.external_id is not None
        first = prepared.first_of_key[(entry.payload.source, entry.payload.external_id)]
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


def _recordset(rows: list[dict[str, Any]]) -> str:
    """The rows as the JSON array `INSERT_MANY` reads."""
    try:
        return orjson.dumps(rows, default=str).decode()
    except TypeError:  # an integer in attributes beyond 64 bits
        return json.dumps(rows, default=str, ensure_ascii=False)


async def store_rows(
    conn: asyncpg.Connection,
    routing: RoutingCache,
    rows: list[dict[str, Any]],
    now: datetime,
    *,
    documents: bool = False,
) -> list[dict[str, Any]]:
    """Route the rows, insert them in one statement and open or join their cases; mark each
    row with what became of it (`_stored`: inserted, else the row already there, as
    `_existing`). With `documents`, answers each row's document as stored (without its case).

    The feedback.received bodies are built only when an endpoint takes them: whether one does
    is read in this transaction just before the insert, so an endpoint enabled in between gets
    none of these items, as if it had been enabled just after them.
    """
    if not rows:
        return []
    cases = await route_rows(conn, routing, rows)
    sources = sorted({r["source"] for r in rows})
    received = await any_subscribed(conn, "feedback.received", sources)
    answers = [feedback_document(r) for r in rows] if documents or received else []
    ids, bodies = [], []
    if received:
        ids = [r["id"] for r in rows]
        bodies = [received_body(d, r["received_at"]) for d, r in zip(answers, rows, strict=True)]
    inserted = {
        r["id"] for r in await conn.fetch(sql.INSERT_MANY, _recordset(rows), ids, bodies, now)
    }
    by_id = {r["id"]: r for r in rows}
    customers = await link_customers(conn, [r for r in rows if r["id"] in inserted])
    # Cases in one order (team, customer), which every writer keeps, so that two transactions
    # joining the same customers' cases wait for each other rather than deadlock. The sort is
    # stable: of one customer's complaints the first sent opens the case, the others join it.
    negative = sorted(
        (by_id[fid] for fid in cases if fid in inserted),
        key=lambda r: (r["routing_team"], customers.get(r["id"], "")),
    )
    opened = [
        [
            r["id"],
            r["source"],
            r["external_id"],
            *with_customer(cases[r["id"]], customers.get(r["id"])),
        ]
        for r in negative
    ]
    if opened:
        await conn.executemany(sql.OPEN_CASE, opened)
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
    raw: RawTransaction,
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
    check_source(principal, payload.source)
    now = utcnow()
    row = new_row(payload, principal, None, settings, now)
    conn = await raw.connection()
    stored = await conn.fetchrow(sql.SELECT_FOR_UPDATE, payload.source, payload.external_id)
    if stored is None:
        await store_rows(conn, routing, [row], now)
        if row["_stored"]:
            return Ingested(await read_feedback(conn, row["id"]), created=True)
        # Stored by another request meanwhile: replace that one.
        stored = await conn.fetchrow(sql.SELECT_FOR_UPDATE, payload.source, payload.external_id)
        assert stored is not None
    if stored["api_key_id"] != principal.key_id and not principal.has(Scope.ADMIN):
        raise feedback_not_found()
    if stored["request_hash"] == row["request_hash"]:
        return Ingested(feedback_document(stored), created=False)
    row.update(
        id=stored["id"],
        submitted_at=payload.submitted_at or stored["submitted_at"],
        received_at=stored["received_at"],
    )
    cases = await route_rows(conn, routing, [row])
    await conn.execute(sql.UPDATE_FEEDBACK, *sql.update_values(row))
    customers = await link_customers(conn, [row])
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
        values = with_customer(cases[row["id"]], customers.get(row["id"]))
        await conn.fetchrow(sql.OPEN_CASE, row["id"], row["source"], row["external_id"], *values)
    return Ingested(await read_feedback(conn, row["id"]), created=False)
