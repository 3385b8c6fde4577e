"""Storing feedback one item at a time: a single item, a follow-up answer, a replacement (PUT).

Each derives its row (app/feedback/derive.py) and stores it with app/feedback/store.py, in the
request's one transaction: services here never commit. Single items are the exception to the
request's transaction: concurrent requests' items are written together, in the transaction of
their group (`write_group`, app/feedback/group.py). Batches are app/feedback/batch.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.cases.followups import accept_followup, record_followup
from app.cases.intake import record_feedback_updated, with_customer
from app.cases.linking import LinkingRaced, link_customers
from app.core.auth import Principal, Scope
from app.core.config import Settings
from app.core.db import Database, RawTransaction, session_sql, utcnow
from app.core.errors import AppError, Conflict
from app.core.metrics import count_cases_opened, count_stored_rows
from app.feedback import statements as sql
from app.feedback.derive import check_source, new_row
from app.feedback.group import GroupCommit
from app.feedback.identity import IdentitySecrets
from app.feedback.reads import case_summary, feedback_document, feedback_not_found, read_feedback
from app.feedback.schemas import FeedbackCreate
from app.feedback.store import Ingested, judge_replay, received_body, route_rows, store_rows
from app.routing.evaluation import RoutingCache

# Writes of a group before its error goes to the group commit (which then writes its items one
# at a time): each lost only to a race with another writer.
_ATTEMPTS = 5


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
        writers=settings.ingest_group_writers,
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

    Linking takes no savepoint here (two round trips a group less): when it races another
    writer, or a deadlock is found, the whole transaction is rolled back and written again,
    from the same derived items (nothing outside it has seen them yet).
    """
    for _ in range(_ATTEMPTS - 1):
        try:
            return await _write_group_once(database, group, routing, identities)
        except (LinkingRaced, asyncpg.DeadlockDetectedError):
            continue
    return await _write_group_once(database, group, routing, identities)


async def _write_group_once(
    database: Database,
    group: list[_Pending],
    routing: RoutingCache,
    identities: IdentitySecrets,
) -> list[Ingested | Exception]:
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
        documents = await store_rows(
            conn, routing, rows, utcnow(), documents=True, savepoints=False
        )
        for index, row, document in zip(written, rows, documents, strict=True):
            if row["_stored"]:
                case = row.get("_case")
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
    return judge_replay(stored, principal, idempotency_key, row)


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
        return judge_replay(stored, principal, idempotency_key, row)
    if case.followup_used_at is not None:
        raise Conflict("This follow-up link was already answered.", code="followup_used")
    await record_followup(
        session,
        case,
        row["id"],
        source=row["source"],
        external_id=row["external_id"],
        sentiment=row["sentiment"],
        score=row["score"],
    )
    count_stored_rows([{**row, "_stored": True}])  # a statement of one, which stored it
    summary = {
        "case_id": case.id,
        "case_number": case.number,
        "case_team": case.team,
        "case_status": case.status,
    }
    return Ingested(feedback_document({**row, **summary}), created=True)


async def put_feedback(
    raw: RawTransaction,
    payload: FeedbackCreate,
    *,
    principal: Principal,
    settings: Settings,
    routing: RoutingCache,
    cases_since: datetime | None = None,
) -> Ingested:
    """Create the item, or replace what it says and re-derive, re-route and re-case it (with
    `cases_since`, an item submitted before it opens no case: see `route_rows`).

    Only the key that stored it or an admin may replace it; to any other key it does not exist.
    A change that makes it negative opens or joins a case; a change to an item on a case is on
    the case's timeline (`feedback_updated`, naming each field that changed: `item_changes`),
    and leaves the case as it is.
    """
    check_source(principal, payload.source)
    now = utcnow()
    row = new_row(payload, principal, None, settings, now)
    conn = await raw.connection()
    stored = await conn.fetchrow(sql.SELECT_FOR_UPDATE, payload.source, payload.external_id)
    if stored is None:
        await store_rows(conn, routing, [row], now, cases_since=cases_since)
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
    cases = await route_rows(conn, routing, [row], cases_since=cases_since)
    await conn.execute(sql.UPDATE_FEEDBACK, *sql.update_values(row))
    customers = await link_customers(conn, [row])
    if stored["case_id"] is not None:
        changes, changed = item_changes(stored, row)
        if changed:
            await record_feedback_updated(
                conn,
                stored["case_id"],
                row["id"],
                actor=principal.name,
                changes=changes,
                changed=changed,
                now=now,
            )
    elif row["id"] in cases:
        values = with_customer(cases[row["id"]], customers.get(row["id"]))
        case = await conn.fetchrow(
            sql.OPEN_CASE, row["id"], row["source"], row["external_id"], *values
        )
        count_cases_opened([case])
    return Ingested(await read_feedback(conn, row["id"]), created=False)


# What a case's timeline keeps of a replaced item's values (`feedback_updated`): those that say
# what the item counts as, which erasure keeps too. Of who sent it and what they wrote (the
# customer, the comment and the cues read in it, the attributes) it names the fields only: a
# timeline outlives an erasure request.
_VALUES_TOLD = frozenset(
    (
        "channel",
        "metric",
        "score",
        "category",
        "sentiment",
        "tags",
        "touchpoint",
        "journey_stage",
        "submitted_at",
        "routing",
    )
)
# What a PUT never changes, or is not the item's own (its case shows itself).
_KEPT = frozenset(("id", "source", "external_id", "received_at", "case"))
# The fields whose own fields are named one by one: `customer.email`, `attributes.plan`.
_MAPS = ("customer", "attributes")
_ABSENT = object()


def item_changes(
    before: asyncpg.Record | dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """What replacing a stored row by another changed, compared as the API shows the item
    (`feedback_document`): the values, from and to, of the fields in `_VALUES_TOLD`, and the
    name of every field that changed, in the document's order (attributes by name)."""
    old, new = feedback_document(before), feedback_document(after)
    changes: dict[str, dict[str, Any]] = {}
    changed: list[str] = []
    for name, value in new.items():
        if name in _KEPT:
            continue
        if name in _MAPS:
            keys = list(value) if name == "customer" else sorted(old[name].keys() | value.keys())
            changed.extend(
                f"{name}.{key}"
                for key in keys
                if not _same(old[name].get(key, _ABSENT), value.get(key, _ABSENT))
            )
        elif not _same(old[name], value):
            changed.append(name)
            if name in _VALUES_TOLD:
                changes[name] = {"from": old[name], "to": value}
    return changes, changed


def _same(one: Any, other: Any) -> bool:
    # By type too: an attribute that was `true` and is now `1` changed, though True == 1.
    return type(one) is type(other) and bool(one == other)
