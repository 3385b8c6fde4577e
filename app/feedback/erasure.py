"""A customer's feedback found (for the customer view), forgotten, exported or aged out (SPEC §4,
§7).

Erasure and retention blank who said it and what they wrote (contact, name, external id,
comment, attributes) and keep what it counts as: metric, score, category, sentiment, tags,
channel, source, touchpoint, stage, team and times, so the reports do not move.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_OF_CUSTOMER = (
    "(customer_external_id = ANY(:keys) OR customer_email = ANY(:keys) "
    "OR customer_phone = ANY(:keys))"
)
# Of those, a known customer's own as their view and their copy show them (`:known`: some
# identity of theirs is verified): a claimed (unverified) item counts only when every identity
# it names is theirs. One naming them beside another person's address (anyone may type both
# into a web page) is that claim's own, not theirs: their copy would hand them a stranger's
# address. Erasure still blanks it (it names them).
_THEIRS = (
    f"({_OF_CUSTOMER} AND (customer_verified OR NOT :known OR ("
    "coalesce(customer_external_id = ANY(:keys), true) "
    "AND coalesce(customer_email = ANY(:keys), true) "
    "AND coalesce(customer_phone = ANY(:keys), true))))"
)
_BLANK = (
    "customer_external_id = NULL, customer_email = NULL, customer_phone = NULL, "
    "customer_name = NULL, customer_locale = NULL, comment = NULL, attributes = '{}'"
)
_IDS = text(f"SELECT id FROM feedback WHERE {_OF_CUSTOMER}")
_THEIR_IDS = text(f"SELECT id FROM feedback WHERE {_THEIRS}")
_SELECT_FOR_ERASURE = text(
    "SELECT id, received_at, customer_name, comment FROM feedback "
    f"WHERE {_OF_CUSTOMER} OR id = ANY(:ids) ORDER BY id FOR UPDATE"
)
_ERASE = text(f"UPDATE feedback SET {_BLANK} WHERE id = ANY(:ids)")


@dataclass
class ErasedFeedback:
    """What erasure took from feedback, for the other rooms to find its traces: the ids, when
    the first arrived, and the names and comments a note or a message may quote."""

    ids: list[uuid.UUID] = field(default_factory=list)
    first_received_at: datetime | None = None
    quoted: set[str] = field(default_factory=set)


_CUSTOMER_FEEDBACK = text(
    "SELECT id, source, channel, external_id, metric, score, category, sentiment, comment, tags, "
    "submitted_at, customer_external_id, customer_email, customer_phone, customer_name, "
    "customer_locale, contact_consent, customer_verified AS verified "
    f"FROM feedback WHERE {_THEIRS} ORDER BY submitted_at DESC, id DESC LIMIT :limit"
)


async def customer_feedback(
    session: AsyncSession, keys: list[str], known: bool, limit: int
) -> list[dict[str, Any]]:
    """The `CustomerFeedback` reader of app/cases/customers.py: the newest `limit` items bearing
    one of these identities (the customer record's, which cases gather) that are the
    customer's own (`_THEIRS`; `known`: some identity of theirs is verified)."""
    params = {"keys": keys, "known": known, "limit": limit}
    rows = (await session.execute(_CUSTOMER_FEEDBACK, params)).mappings()
    return [dict(row) for row in rows]


async def feedback_ids_of(
    session: AsyncSession, keys: list[str], *, known: bool | None = None
) -> list[uuid.UUID]:
    """The items bearing one of these identities; with `known` (whether the customer is known
    by a verified identity), the customer's own, as their copy shows them (`_THEIRS`)."""
    if known is None:
        return list(await session.scalars(_IDS, {"keys": keys}))
    return list(await session.scalars(_THEIR_IDS, {"keys": keys, "known": known}))


async def erase_feedback(
    session: AsyncSession, *, keys: list[str], ids: list[uuid.UUID]
) -> ErasedFeedback:
    """Blank the items bearing one of these identities, and these items (the customer's answers
    to follow-up questions, which may bear none)."""
    erased = ErasedFeedback()
    params = {"keys": keys, "ids": ids}
    for row in (await session.execute(_SELECT_FOR_ERASURE, params)).mappings():
        erased.ids.append(row["id"])
        if erased.first_received_at is None or row["received_at"] < erased.first_received_at:
            erased.first_received_at = row["received_at"]
        erased.quoted.update(v for v in (row["customer_name"], row["comment"]) if v)
    if erased.ids:
        await session.execute(_ERASE, {"ids": erased.ids})
    return erased


_EXPORT = text(
    "SELECT id, source, channel, external_id, customer_external_id, customer_email, "
    "customer_phone, customer_name, customer_locale, contact_consent, customer_verified, "
    "metric, score, comment, tags, touchpoint, journey_stage, attributes, category, sentiment, "
    f"routing_team, submitted_at, received_at FROM feedback WHERE {_THEIRS} OR id = ANY(:ids) "
    "ORDER BY submitted_at, id"
)


async def feedback_of(
    session: AsyncSession, *, keys: list[str], known: bool, ids: list[uuid.UUID]
) -> AsyncIterator[dict[str, Any]]:
    """Every item bearing one of these identities that is the customer's own (`_THEIRS`), and
    these items, oldest first, read as it is sent."""
    result = await session.stream(_EXPORT, {"keys": keys, "known": known, "ids": ids})
    async for row in result.mappings():
        yield dict(row)


# Retention walks feedback in (submitted_at, id) order, a batch at a time from where it left
# off, on the index that order has: each row is read once per pass, however many are blanked.
_NEXT_BATCH = text(
    "SELECT id, submitted_at FROM feedback WHERE submitted_at < :before "
    "AND (submitted_at, id) > (:after_at, :after_id) ORDER BY submitted_at, id LIMIT :batch"
)
_AGE_OUT = text(
    f"UPDATE feedback SET {_BLANK} WHERE id = ANY(:ids) AND (comment IS NOT NULL "
    "OR customer_external_id IS NOT NULL OR customer_email IS NOT NULL "
    "OR customer_phone IS NOT NULL OR customer_name IS NOT NULL OR attributes <> '{}')"
)
# Where a walk of feedback stands: the (submitted_at, id) of the last item it read.
WalkKey = tuple[datetime, uuid.UUID]
START: WalkKey = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))


async def age_out_feedback(
    session: AsyncSession,
    *,
    before: datetime,
    after: WalkKey = START,
    batch: int,
) -> tuple[int, WalkKey | None]:
    """Blank the next batch of feedback submitted before `before`, after the key `after`;
    answer how many items it blanked and where the next batch starts (None: the pass is done)."""
    rows = (
        await session.execute(
            _NEXT_BATCH,
            {"before": before, "after_at": after[0], "after_id": after[1], "batch": batch},
        )
    ).all()
    if not rows:
        return 0, None
    result = await session.execute(_AGE_OUT, {"ids": [row.id for row in rows]})
    last = rows[-1]
    return int(getattr(result, "rowcount", 0) or 0), (last.submitted_at, last.id)
