"""Linking stays a few index probes a customer however many customers there are.

The lock-and-read statement once joined the identities sent to every record's members; the
planner, guessing how many records a set of identities locks, chose to scan the whole customer
and identity tables, so each ingest group paid for every customer ever seen (8 ms a call at
20,000 customers, growing with them). The plan is read here from PostgreSQL itself.
"""

from __future__ import annotations

from typing import Any

from app.cases.linking import _LOCK_MEMBERS
from app.core.db import BoundDatabase

CUSTOMERS = 5_000


def _scanned(node: dict[str, Any]) -> set[str]:
    """The tables the plan reads whole (sequential scans), anywhere in it."""
    found = {node["Relation Name"]} if node.get("Node Type") == "Seq Scan" else set()
    for child in node.get("Plans", []):
        found |= _scanned(child)
    return found


async def test_locking_returning_customers_scans_no_table_whole(database: BoundDatabase) -> None:
    async with database.raw() as conn:
        await conn.execute(
            "INSERT INTO customer (id, created_at) "
            "SELECT closeloop_uuid7(), now() FROM generate_series(1, $1)",
            CUSTOMERS,
        )
        await conn.execute(
            "INSERT INTO customer_identity (id, customer_id, kind, value, verified, "
            "first_seen_at, source, channel) "
            "SELECT closeloop_uuid7(), c.id, k.kind, k.kind || ':' || c.id, true, now(), "
            "'web', 'web' FROM customer c, (VALUES ('email'), ('external_id')) AS k(kind)"
        )
        sample = await conn.fetch(
            "SELECT kind, value FROM customer_identity ORDER BY value LIMIT 20"
        )
        plans = []
        # The first runs of a prepared statement are planned for their values, later ones
        # may take the generic plan: both must probe.
        for _ in range(7):
            explained = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) {_LOCK_MEMBERS}",
                [r["value"] for r in sample],
                [r["kind"] for r in sample],
            )
            # (The connection decodes json itself.)
            plans.append(explained[0]["Plan"])
        members = await conn.fetch(
            _LOCK_MEMBERS, [r["value"] for r in sample], [r["kind"] for r in sample]
        )
    assert all(_scanned(plan) == set() for plan in plans), [_scanned(p) for p in plans]
    # And it still reads what it did: each record of those identities with all its members.
    customers = {m["customer_id"] for m in members}
    assert len(customers) == 20
    assert len(members) == 2 * len(customers)
