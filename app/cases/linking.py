"""One customer across channels: customer records and the identities that link them (SPEC §7).

A customer is a record (`customer`) holding identities (`customer_identity`): their external
id, e-mail addresses and phones (E.164). Every stored item's identities are recorded with where
they were first learned, and an item with a verified identity belongs to that identity's
customer: the case statement joins on the customer's id, so the customer who wrote by e-mail
first and then answered an app survey has one customer view and one open case per team.

What links, for each stored item in the order sent (`link_customers`):
- A claimed identity (unverified: unsigned, from a publishable key) is recorded the first time
  it is seen, alone in a record of its own, and links nothing: its item gets no customer, so
  its case joins none and none joins it (app/cases/intake.py).
- A verified item's identities go to one customer: its external id's; else its e-mail's, else
  its phone's; else a new one. A new identity joins that customer; a known one held by another
  record brings that record along (the two merge, their cases keyed to the survivor), unless
  both records hold an external id (the company's own ids say two people: a shared family
  address links neither way), or either holds an identity an admin detached (the undo stands).
- A verified item verifies the claimed identities it carries.

On the ingest hot path: a set of items costs the same few statements whatever its size (a
savepoint, lock and read the records of its identities, and when some are new, record those,
an all-new verified item's in one record; write the changes), plus, when known records merge, a
second read of them (held by then, so nothing they gained while this writer waited is lost
with them) and one statement per merge. A caller that can run its whole transaction again (the
group commit) links without the savepoint, two round trips less: a race that would go back to
it raises `LinkingRaced` instead. Writers lock the customer records they touch in id order, so
two items of one customer, sent at once, link one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import asyncpg

from app.cases.identity import customer_identities
from app.core.db import uuid7

_ACTIVE = "status IN ('open', 'in_progress', 'waiting_on_customer')"

# The new identities, in the records given ($8: an all-new verified item's identities share one,
# any other new identity has one of its own, merged below when a verified item links it); a
# known one is left as it is. The customer rows are written by the same statement, so the
# foreign key holds at its end. The identities recorded are answered as `_LOCK_MEMBERS` reads
# them: their records, made here, are this transaction's alone until it commits.
_RECORD_NEW = """
WITH n AS (
    SELECT closeloop_uuid7() AS id, n.*
    FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::uuid[],
        $7::timestamptz[], $8::uuid[])
        AS n(kind, value, verified, source, channel, feedback_id, at, customer_id)
),
i AS (
    INSERT INTO customer_identity (id, customer_id, kind, value, verified, verified_at, source,
        channel, feedback_id, first_seen_at)
    SELECT id, customer_id, kind, value, verified, CASE WHEN verified THEN at END, source,
        channel, feedback_id, at
    FROM n
    ON CONFLICT (value, kind) DO NOTHING
    RETURNING id, customer_id, kind, value, verified, verified_at, first_seen_at
),
c AS (
    INSERT INTO customer (id, created_at)
    SELECT customer_id, min(first_seen_at) FROM i GROUP BY customer_id
)
SELECT id, customer_id, kind, value, verified, verified_at, NULL::timestamptz AS detached_at
FROM i
"""
# Lock the records holding these identities, in id order, and read every identity they hold.
# Each identity and each record's members are found by an index probe of their own (LATERAL):
# as a join, the planner's guess of how many records a set of identities locks let it scan the
# whole customer and identity tables, some 8 ms a call at 20,000 customers, growing with them.
_LOCK_MEMBERS = """
WITH locked AS (
    SELECT id FROM customer WHERE id IN (
        SELECT i.customer_id FROM unnest($1::text[], $2::text[]) AS u(value, kind)
        CROSS JOIN LATERAL (
            SELECT customer_id FROM customer_identity
            WHERE value = u.value AND kind = u.kind LIMIT 1
        ) i
    )
    ORDER BY id FOR UPDATE
)
SELECT m.id, m.customer_id, m.kind, m.value, m.verified, m.verified_at, m.detached_at
FROM locked CROSS JOIN LATERAL (
    SELECT * FROM customer_identity WHERE customer_id = locked.id
) m
"""
# Every identity of these records (held by this transaction), as `_LOCK_MEMBERS` reads them.
_MEMBERS = """
SELECT id, customer_id, kind, value, verified, verified_at, detached_at
FROM customer_identity WHERE customer_id = ANY($1::uuid[])
"""
_MOVE = """
UPDATE customer_identity i SET customer_id = u.customer_id, verified = u.verified,
    verified_at = u.verified_at
FROM unnest($1::uuid[], $2::uuid[], $3::boolean[], $4::timestamptz[])
    AS u(id, customer_id, verified, verified_at)
WHERE i.id = u.id
"""
# A merged record's cases become the survivor's; an active one stays keyed as it was where the
# survivor has its own active case with that team (both stay open, for an agent to settle).
_REKEY_CASES = f"""
UPDATE feedback_case c SET customer_key = $2
WHERE c.customer_key = $1 AND NOT (c.{_ACTIVE} AND EXISTS (
    SELECT 1 FROM feedback_case s
    WHERE s.customer_key = $2 AND s.opened_for_team = c.opened_for_team AND s.{_ACTIVE}
))
"""
_DROP_RECORDS = "DELETE FROM customer WHERE id = ANY($1::uuid[])"
# Rounds of lock-and-read before giving up: each is lost only to a concurrent merge or erasure.
_ATTEMPTS = 5


class _Records:
    """The locked customer records of a set of items, as linking changes them."""

    def __init__(self, members: list[dict[str, Any]], fresh: set[uuid.UUID]) -> None:
        self.identities: dict[tuple[str, str], dict[str, Any]] = {}
        self.members: dict[uuid.UUID, set[tuple[str, str]]] = {}
        for member in members:
            key = (member["kind"], member["value"])
            self.identities[key] = member
            self.members.setdefault(member["customer_id"], set()).add(key)
        # The records made by this call, which no case can name yet.
        self.fresh = fresh & self.members.keys()
        self.changed: set[tuple[str, str]] = set()
        # Each merged record and the one it went into.
        self.merged: dict[uuid.UUID, uuid.UUID] = {}

    def owner(self, key: tuple[str, str]) -> uuid.UUID:
        customer_id: uuid.UUID = self.identities[key]["customer_id"]
        return customer_id

    def survivor(self, customer_id: uuid.UUID) -> uuid.UUID:
        while customer_id in self.merged:
            customer_id = self.merged[customer_id]
        return customer_id

    def _has_external_id(self, customer_id: uuid.UUID) -> bool:
        return any(kind == "external_id" for kind, _ in self.members[customer_id])

    def _pinned(self, customer_id: uuid.UUID) -> bool:
        return any(self.identities[k]["detached_at"] is not None for k in self.members[customer_id])

    def _may_merge(self, one: uuid.UUID, other: uuid.UUID) -> bool:
        both_named = self._has_external_id(one) and self._has_external_id(other)
        return not both_named and not self._pinned(one) and not self._pinned(other)

    def _merge(self, one: uuid.UUID, other: uuid.UUID) -> uuid.UUID:
        """Merge two records into the older one (ids are time-ordered), whose cases stay as
        they are; answer it."""
        winner, loser = sorted((one, other))
        for key in self.members.pop(loser):
            self.identities[key]["customer_id"] = winner
            self.members[winner].add(key)
            self.changed.add(key)
        self.merged[loser] = winner
        return winner

    def place(self, row: Mapping[str, Any]) -> uuid.UUID | None:
        """Link the item's identities; answer its customer (none for a claimed identity)."""
        keys = customer_identities(row)
        if not keys or not row["customer_verified"]:
            return None
        for key in keys:
            identity = self.identities[key]
            if not identity["verified"]:
                identity.update(verified=True, verified_at=row["received_at"])
                self.changed.add(key)
        # Its external id's record (keys come external id, e-mail, phone), else the first's.
        target = self.owner(keys[0])
        for key in keys[1:]:
            owner = self.owner(key)
            if owner != target and self._may_merge(owner, target):
                target = self._merge(owner, target)
        return target


def _new_identities(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The columns of `_RECORD_NEW` for each identity the rows carry, as the first row carrying
    it says (sorted, so that two writers insert in one order), the last one the record each
    would be made in, as a label (`_record_ids` makes the ids, for the new ones only): the
    identities a verified item is the first to carry share one (were they all new, linking
    would merge their records at once), any other has its own."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        for key in customer_identities(row):
            first.setdefault(key, row)
    ordered = sorted(first.items(), key=lambda item: (item[0][1], item[0][0]))
    return [
        [kind for (kind, _), _ in ordered],
        [value for (_, value), _ in ordered],
        *(
            [row[column] for _, row in ordered]
            for column in ("customer_verified", "source", "channel", "id", "received_at")
        ),
        [row["id"] if row["customer_verified"] else key for key, row in ordered],
    ]


def _record_ids(labels: list[Any]) -> list[uuid.UUID]:
    """A new record's id for each label, one per distinct label."""
    ids: dict[Any, uuid.UUID] = {}
    for label in labels:
        if label not in ids:
            ids[label] = uuid7()
    return [ids[label] for label in labels]


async def link_customers(
    conn: asyncpg.Connection, rows: list[dict[str, Any]], *, savepoints: bool = True
) -> dict[uuid.UUID, str]:
    """Record and link the identities of these stored items, in the caller's transaction;
    answer each verified item's customer key (its record's id), by feedback id.

    Without `savepoints`, a race that would take the locks again raises `LinkingRaced` (and a
    deadlock aborts the transaction): for a caller that then runs its whole transaction again.
    """
    columns = _new_identities(rows)
    if not columns[0]:
        return {}
    wanted = set(zip(columns[0], columns[1], strict=True))
    for _ in range(_ATTEMPTS):
        records = await _lock(conn, columns, savepoints=savepoints)
        held = sorted(records.members)
        placed = {row["id"]: records.place(row) for row in rows}
        if not records.merged.keys() - records.fresh:
            break
        # The records were read as of the start of the statement that locked them: one whose
        # lock it waited for may have gained an identity since, which merging it away would
        # delete with it. Held now, they are read again and placed again (such merges are rare:
        # a record this call made is merged away without, as no other writer can see it); one
        # that lost an identity meanwhile (an admin detached it) sends linking round again.
        members = [dict(m) for m in await conn.fetch(_MEMBERS, held)]
        records = _Records(members, records.fresh)
        if wanted <= records.identities.keys():
            placed = {row["id"]: records.place(row) for row in rows}
            break
        if not savepoints:
            raise LinkingRaced
    else:
        raise RuntimeError("customer records kept changing under the linking of identities")
    if records.changed:
        moved = [records.identities[key] for key in sorted(records.changed)]
        await conn.execute(
            _MOVE,
            [m["id"] for m in moved],
            [m["customer_id"] for m in moved],
            [m["verified"] for m in moved],
            [m["verified_at"] for m in moved],
        )
    for loser in sorted(records.merged.keys() - records.fresh):
        await conn.execute(_REKEY_CASES, str(loser), str(records.survivor(loser)))
    if records.merged:
        await conn.execute(_DROP_RECORDS, sorted(records.merged))
    return {
        feedback_id: str(records.survivor(customer_id))
        for feedback_id, customer_id in placed.items()
        if customer_id is not None
    }


class _Moved(Exception):
    """A record this writer waited for was merged away, or an identity erased, meanwhile."""


class LinkingRaced(Exception):
    """Linking without savepoints met a concurrent merge, erasure or detach: roll the
    transaction back and run it again (as on a deadlock)."""


async def _lock(
    conn: asyncpg.Connection, columns: list[list[Any]], *, savepoints: bool
) -> _Records:
    """Record the new identities, lock the records holding them all, in id order, and read
    every identity of those records.

    Most identities are known already (customers come back), so the records are locked and
    read first, in one statement; only the identities missing from them are recorded (which
    costs an id and an index probe each), and their records locked and read in one more.

    Each attempt is a savepoint: when a record this writer waited for was merged away meanwhile
    (its identities now in another record), or a deadlock is found all the same, the attempt
    lets go of what it locked and starts again, so locks are always taken in one order. Without
    `savepoints` there is one attempt, and a lost one raises `LinkingRaced`.
    """
    kinds, values = columns[0], columns[1]
    wanted = set(zip(kinds, values, strict=True))
    for _ in range(_ATTEMPTS):
        try:
            async with conn.transaction() if savepoints else nullcontext():
                members = await conn.fetch(_LOCK_MEMBERS, values, kinds)
                missing = wanted - {(m["kind"], m["value"]) for m in members}
                fresh: set[uuid.UUID] = set()
                if missing:
                    new = _only(columns, missing)
                    made = await conn.fetch(_RECORD_NEW, *new[:-1], _record_ids(new[-1]))
                    fresh = {m["customer_id"] for m in made}
                    members = [*members, *made]
                    # Recorded meanwhile by another writer: their records are locked and read
                    # (those of the others are locked already: none can change meanwhile).
                    late = missing - {(m["kind"], m["value"]) for m in made}
                    if late:
                        late_columns = _only(columns, late)
                        more = await conn.fetch(_LOCK_MEMBERS, late_columns[1], late_columns[0])
                        if not late <= {(m["kind"], m["value"]) for m in more}:
                            raise _Moved
                        members = list({m["id"]: m for m in [*members, *more]}.values())
        except _Moved:
            if not savepoints:
                raise LinkingRaced from None
            continue
        except asyncpg.DeadlockDetectedError:
            if not savepoints:
                raise
            continue
        return _Records([dict(m) for m in members], fresh=fresh)
    raise RuntimeError("customer records kept changing under the linking of identities")


def _only(columns: list[list[Any]], keys: set[tuple[str, str]]) -> list[list[Any]]:
    """The columns of `_RECORD_NEW` for these identities only."""
    rows = [row for row in zip(*columns, strict=True) if (row[0], row[1]) in keys]
    return [list(column) for column in zip(*rows, strict=True)]
