"""The customers migration builds records from the feedback already stored, and goes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.core.embedded import EmbeddedPostgres
from app.core.migrations import downgrade, upgrade
from tests.processes import driver_connection, own_database

BEFORE = "uuid7_function"

# (minute received, external id, e-mail, phone, verified)
ITEMS = [
    (1, None, "ana@example.com", None, True),  # Ana by e-mail first ...
    (2, "cus_42", "ana@example.com", "+351912345678", True),  # ... then in the app
    (3, "cus_1", "family@example.com", None, True),
    (4, "cus_2", "family@example.com", None, True),  # a shared address stays the first's
    (5, None, None, "+14155550100", True),
    (6, "cus_42", "evil@example.com", None, False),  # a claim links nothing
]


@pytest.fixture
async def url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    async with own_database(pg_server, BEFORE) as url:
        yield url


async def _seed(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO team (key, name, first_response_minutes, resolution_minutes, is_default, "
        "created_at, updated_at) VALUES ('support', 'Support', 60, 600, false, now(), now())"
    )
    for minute, external_id, email, phone, verified in ITEMS:
        await conn.execute(
            "INSERT INTO feedback (id, source, channel, customer_external_id, customer_email, "
            "customer_phone, customer_verified, sentiment, submitted_at, received_at) "
            "VALUES (closeloop_uuid7(), 'web', 'web', $1, $2, $3, $4, 'negative', "
            "'2026-11-01'::timestamptz + make_interval(mins => $5), "
            "'2026-11-01'::timestamptz + make_interval(mins => $5))",
            external_id,
            email,
            phone,
            verified,
            minute,
        )
    # Ana's two open cases, as the old join key (first identity of the first item) made them.
    for key, external_id, email in [
        ("ana@example.com", None, "ana@example.com"),
        ("cus_42", "cus_42", "ana@example.com"),
    ]:
        await conn.execute(
            "INSERT INTO feedback_case (id, status, priority, priority_rank, team, "
            "opened_for_team, customer_key, customer_keys, customer_external_id, customer_email, "
            "contact_consent, can_notify, tags, first_response_due_at, resolution_due_at, "
            "version, created_at, updated_at) VALUES (closeloop_uuid7(), 'open', 'normal', 2, "
            "'support', 'support', $1, ARRAY[$1], $2, $3, true, true, '{}', now(), now(), 1, "
            "now(), now())",
            key,
            external_id,
            email,
        )


async def test_the_backfill_links_stored_identities_and_rekeys_cases(url: str) -> None:
    async with driver_connection(url) as conn:
        await _seed(conn)
        await asyncio.to_thread(upgrade, url)
        rows = await conn.fetch(
            "SELECT kind, value, verified, customer_id FROM customer_identity ORDER BY value, kind"
        )
        owner = {r["value"]: r["customer_id"] for r in rows}
        assert {r["value"]: r["verified"] for r in rows} == {
            "+14155550100": True,
            "+351912345678": True,
            "ana@example.com": True,
            "cus_1": True,
            "cus_2": True,
            "cus_42": True,
            "evil@example.com": False,
            "family@example.com": True,
        }
        assert owner["ana@example.com"] == owner["cus_42"] == owner["+351912345678"]
        assert owner["family@example.com"] == owner["cus_1"] != owner["cus_2"]
        assert owner["evil@example.com"] != owner["cus_42"]
        assert await conn.fetchval("SELECT count(*) FROM customer") == 5
        cases = await conn.fetch("SELECT customer_key FROM feedback_case ORDER BY created_at, id")
        # Ana's first case is keyed by her record; her second keeps its old key: one open case
        # per team and customer is what joins.
        assert [c["customer_key"] for c in cases] == [str(owner["cus_42"]), "cus_42"]

        await asyncio.to_thread(downgrade, url, BEFORE)
        cases = await conn.fetch("SELECT customer_key FROM feedback_case ORDER BY created_at, id")
        assert [c["customer_key"] for c in cases] == ["ana@example.com", "cus_42"]
