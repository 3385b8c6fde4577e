"""The closed loop stays exact while feedback keeps arriving and the worker folds (SPEC §6):
each report, read in a REPEATABLE READ transaction while complaints are stored, cases resolved
and told and marked cases folded on other connections, equals the raw rows' answer in the
same snapshot. Real commits, separate connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database, session_sql
from app.reports.closed_loop import closed_loop_report
from app.reports.facts import fold
from app.reports.period import report_period
from app.reports.schemas import LoopGroup
from tests.builders import (
    acted,
    make_team,
    read_case,
    register_endpoint,
    send_feedback,
    webhooks_on_loopback,
)
from tests.reports.test_closed_loop_random import reference

ITEMS = 60


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """case.resolved goes to an endpoint on 127.0.0.1 (never called: delivery is set below)."""
    return webhooks_on_loopback(settings)


async def keep_writing(admin: httpx.AsyncClient, database: Database) -> None:
    """Complaints (some joining a case), a case resolved and told now and then, folds."""
    for n in range(ITEMS):
        item = await send_feedback(
            admin,
            external_id=f"complaint-{n}",
            customer={"external_id": f"cus_{n % 11}", "contact_consent": n % 4 != 0},
            score=n % 7,
            channel=["web", "app", "email"][n % 3],
        )
        if n % 5 == 4:
            case = await read_case(admin, item["case"]["id"])
            if case["status"] == "open":
                body = {"code": "fixed", "customer_message": "Sorted."}
                await acted(admin, case, "resolve", body)
                async with database.raw() as conn:
                    await conn.execute(
                        "UPDATE outbox_message SET status = 'delivered', delivered_at = now() "
                        "WHERE case_id = $1 AND event_type = 'case.resolved'",
                        uuid.UUID(case["id"]),
                    )
        if n % 7 == 6:
            await fold(database, batch=5)


async def report_and_reference(database: Database, group_by: str) -> tuple[Any, Any]:
    """The report and the raw rows' answer, from one snapshot."""
    period = report_period("2020-01-01", "2030-12-31", "UTC")
    async with database.sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})

        async def fetch(sql: str, start: datetime, end: datetime) -> Sequence[Mapping[str, Any]]:
            return [dict(row) for row in (await session_sql(session, sql, start, end)).mappings()]

        report = await closed_loop_report(session, group_by=LoopGroup(group_by), period=period)
        expected = await reference(fetch, group_by, period.start, period.end)
        await session.rollback()
    answer = {"overall": report["overall"], "groups": report["groups"]}
    return answer, expected


async def test_reports_during_ingest_and_folds_equal_the_raw_rows_of_their_snapshot(
    committed: Database, committed_client: httpx.AsyncClient
) -> None:
    await make_team(committed_client, "support")
    await register_endpoint(committed_client, "case.resolved", url="http://127.0.0.1:9/hook")
    writer = asyncio.create_task(keep_writing(committed_client, committed))
    compared = 0
    while not writer.done() or compared == 0:
        for group_by in ("team", "channel"):
            report, expected = await report_and_reference(committed, group_by)
            assert report == expected, (compared, group_by)
        compared += 1
        await asyncio.sleep(0)
    await writer
    report, expected = await report_and_reference(committed, "channel")
    assert report == expected
    assert report["overall"]["negative_feedback"] == ITEMS
    assert report["overall"]["customers_told"] > 0
    assert compared > 3
