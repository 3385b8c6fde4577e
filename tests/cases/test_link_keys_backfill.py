"""The links made before case links recorded their item's source and external id take them from
their items, and the downgrade goes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.core.embedded import EmbeddedPostgres
from app.core.migrations import downgrade, upgrade
from tests.processes import driver_connection, own_database

BEFORE = "report_rollups"


@pytest.fixture
async def url(pg_server: EmbeddedPostgres) -> AsyncIterator[str]:
    async with own_database(pg_server, BEFORE) as url:
        yield url


async def test_stored_links_take_their_items_source_and_external_id(url: str) -> None:
    async with driver_connection(url) as conn:
        await conn.execute(
            "INSERT INTO team (key, name, first_response_minutes, resolution_minutes, "
            "is_default, created_at, updated_at) "
            "VALUES ('support', 'Support', 60, 600, true, now(), now())"
        )
        case_id = await conn.fetchval(
            "INSERT INTO feedback_case (id, status, priority, priority_rank, team, "
            "opened_for_team, customer_key, customer_keys, contact_consent, can_notify, tags, "
            "first_response_due_at, resolution_due_at, version, created_at, updated_at) "
            "VALUES (closeloop_uuid7(), 'open', 'normal', 2, 'support', 'support', 'cus_1', "
            "ARRAY['cus_1'], true, true, '{}', now(), now(), 1, now(), now()) RETURNING id"
        )
        for source, external_id, kind in [("web", "resp-1", "opened"), ("app", None, "joined")]:
            await conn.execute(
                "WITH f AS (INSERT INTO feedback (id, source, channel, external_id, sentiment, "
                "submitted_at, received_at) VALUES (closeloop_uuid7(), $1, 'web', $2, "
                "'negative', now(), now()) RETURNING id) "
                "INSERT INTO case_feedback (feedback_id, case_id, kind, added_at) "
                "SELECT f.id, $3, $4, now() FROM f",
                source,
                external_id,
                case_id,
                kind,
            )

    await asyncio.to_thread(upgrade, url)
    async with driver_connection(url) as conn:
        links = await conn.fetch(
            "SELECT kind, source, external_id FROM case_feedback ORDER BY kind"
        )
        assert [tuple(link) for link in links] == [
            ("joined", "app", None),
            ("opened", "web", "resp-1"),
        ]

    await asyncio.to_thread(downgrade, url, BEFORE)
    async with driver_connection(url) as conn:
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'case_feedback'"
        )
        assert {c["column_name"] for c in columns} == {"feedback_id", "case_id", "kind", "added_at"}
        assert await conn.fetchval("SELECT count(*) FROM case_feedback") == 2
