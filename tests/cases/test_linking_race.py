"""Linking under real concurrency: a merge that waited for a record keeps what the record
gained meanwhile.

Linking locks and reads a set of records in one statement, so what it reads is as of that
statement's start. A writer that waited there for another's lock reads the record as it was
before the other committed: merging it away from that view used to delete, with the record, an
identity the other had just added to it (its rows go with their record: ON DELETE CASCADE),
and merged an identity an admin had just detached back into the customer.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from app.cases.customers import detach_identity
from app.cases.linking import LinkingRaced, link_customers
from app.core.db import Database, uuid7
from tests.builders import eventually


def _item(**customer: str) -> dict[str, Any]:
    """A stored item's row, as far as linking reads it: verified identities."""
    return {
        "id": uuid7(),
        "source": "app",
        "channel": "in_app",
        "received_at": datetime.now(UTC),
        "customer_verified": True,
        "customer_external_id": customer.get("external_id"),
        "customer_email": customer.get("email"),
        "customer_phone": customer.get("phone"),
    }


async def _waits_for_a_lock(database: Database, conn: asyncpg.Connection) -> bool:
    pid = conn.get_server_pid()
    async with database.raw() as watcher:
        waiting = await watcher.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
    return bool(waiting)


async def _link(database: Database, item: dict[str, Any]) -> uuid.UUID:
    async with database.raw() as conn, conn.transaction():
        customers = await link_customers(conn, [item])
    return uuid.UUID(customers[item["id"]])


async def _the_detach_stands(
    conn: asyncpg.Connection, linked: dict[uuid.UUID, str], *, older: uuid.UUID, ana: uuid.UUID
) -> None:
    """The item went to cus_W's (older) record; Ana's keeps her phone; the e-mail the admin
    detached stays detached, in a record of its own."""
    identities = await conn.fetch(
        "SELECT kind, customer_id, detached_at IS NOT NULL AS detached "
        "FROM customer_identity ORDER BY kind"
    )
    by_kind = {r["kind"]: r for r in identities}
    assert set(linked.values()) == {str(older)}
    assert by_kind["external_id"]["customer_id"] == older
    assert by_kind["phone"]["customer_id"] == ana
    assert by_kind["email"]["customer_id"] not in (older, ana)
    assert by_kind["email"]["detached"]


async def test_a_merge_keeps_the_identity_its_loser_gained_while_it_waited(
    committed: Database,
) -> None:
    older = await _link(committed, _item(external_id="cus_W"))
    newer = await _link(committed, _item(email="ana@example.com"))
    assert older < newer  # the newer record is the one a merge of the two removes
    async with committed.raw() as first, committed.raw() as second:
        adding = first.transaction()
        await adding.start()
        # The first writer adds a phone to Ana's record, and holds the record till it commits.
        added = await link_customers(first, [_item(email="ana@example.com", phone="+351912345678")])
        assert set(added.values()) == {str(newer)}
        # The second links her e-mail to cus_W: it waits for her record, then merges it away.
        async with second.transaction():
            merging = asyncio.create_task(
                link_customers(second, [_item(external_id="cus_W", email="ana@example.com")])
            )
            await eventually(lambda: _waits_for_a_lock(committed, second))
            assert not merging.done()
            await adding.commit()
            merged = await merging
        assert set(merged.values()) == {str(older)}
        identities = await second.fetch(
            "SELECT kind, value, customer_id FROM customer_identity ORDER BY kind"
        )
    assert [(r["kind"], r["value"], r["customer_id"]) for r in identities] == [
        ("email", "ana@example.com", older),
        ("external_id", "cus_W", older),
        ("phone", "+351912345678", older),
    ]


async def test_a_merge_waiting_on_a_detach_leaves_the_detached_identity_alone(
    committed: Database,
) -> None:
    older = await _link(committed, _item(external_id="cus_W"))
    ana = await _link(committed, _item(email="ana@example.com", phone="+351912345678"))
    async with committed.sessionmaker() as session:
        # An admin undoes the e-mail's link, and holds Ana's record till that commits.
        await detach_identity(session, "ana@example.com", "ana@example.com", actor="admin")
        async with committed.raw() as conn:
            async with conn.transaction():
                merging = asyncio.create_task(
                    link_customers(conn, [_item(external_id="cus_W", email="ana@example.com")])
                )
                await eventually(lambda: _waits_for_a_lock(committed, conn))
                await session.commit()
                # It read the e-mail in Ana's record: it must not merge it along with hers.
                linked = await merging
            await _the_detach_stands(conn, linked, older=older, ana=ana)


async def test_without_savepoints_a_lost_race_is_raised_for_the_caller_to_run_again(
    committed: Database,
) -> None:
    """The group commit links without savepoints: the same race (a detach it waited on) raises
    LinkingRaced, and its transaction, run again, links as the savepoint path does."""
    older = await _link(committed, _item(external_id="cus_W"))
    ana = await _link(committed, _item(email="ana@example.com", phone="+351912345678"))
    item = _item(external_id="cus_W", email="ana@example.com")
    async with committed.sessionmaker() as session:
        await detach_identity(session, "ana@example.com", "ana@example.com", actor="admin")
        async with committed.raw() as conn:
            raced = conn.transaction()
            await raced.start()
            merging = asyncio.create_task(link_customers(conn, [item], savepoints=False))
            await eventually(lambda: _waits_for_a_lock(committed, conn))
            await session.commit()
            with pytest.raises(LinkingRaced):
                await merging
            await raced.rollback()
            async with conn.transaction():
                linked = await link_customers(conn, [item], savepoints=False)
            await _the_detach_stands(conn, linked, older=older, ana=ana)
