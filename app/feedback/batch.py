"""Storing a batch: every item validated and derived on its own (`prepare_batch`, no I/O), the
valid ones stored in one statement (`store_batch`, by app/feedback/store.py), each answered on
its own: created, replayed, or its problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.core.auth import Principal
from app.core.config import Settings
from app.core.db import RawTransaction, utcnow
from app.core.errors import AppError, Conflict, validation_problem
from app.feedback.derive import check_source, new_row
from app.feedback.identity import IdentitySecrets
from app.feedback.schemas import BatchItemResult, FeedbackCreate
from app.feedback.store import conflict, store_rows
from app.routing.evaluation import RoutingCache


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
    cases_since: datetime | None = None,
) -> list[BatchItemResult]:
    """Store the valid items of a prepared batch in one statement; answer every item. With
    `cases_since`, items submitted before it open no case (`store_rows`)."""
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
        await store_rows(
            conn,
            routing,
            [entry.row for entry in accepted],
            prepared.now,
            cases_since=cases_since,
        )
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


def _batch_result(row: dict[str, Any]) -> BatchItemResult:
    if row.get("_stored"):
        return BatchItemResult(status="created", id=row["id"])
    stored = row["_existing"]
    if stored is None:  # erased between the two statements
        return _item_problem(Conflict("The feedback conflicts with another request; retry."))
    if stored["request_hash"] not in (None, row["request_hash"]):
        return _item_problem(conflict(stored))
    return BatchItemResult(status="replayed", id=stored["id"])
