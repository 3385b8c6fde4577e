"""The closed loop reads facts folded per case (app/reports/facts.py) and works out the cases
marked since from their raw rows; on random data it must equal a direct computation on the raw
rows, written here in plain SQL (SPEC §6): with nothing folded, with everything folded, and
with changes made after a fold (PUTs, a reopening, a resolution told, an erasure, deleted
items) still unfolded.

The data are the random world of test_rollups_random.py: answers over fourteen months, cases
through every state, then what moves figures afterwards.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.reports.closed_loop import COUNTS, loop_figures
from app.reports.facts import fold
from app.reports.rollups import compact
from app.reports.scores import ordered_keys
from tests.builders import acted, read_case, webhooks_on_loopback
from tests.reports.test_rollups_random import (
    RANGES,
    SOURCES,
    afterwards,
    moment,
    random_answers,
    random_cases,
)

REFERENCE_NEGATIVE = """
SELECT GROUPING(key) = 1 AS overall, key, count(*) AS negative_feedback,
       count(*) FILTER (WHERE contact_consent) AS negative_with_consent,
       count(*) FILTER (WHERE contact_consent AND EXISTS (
           SELECT FROM outbox_message m WHERE m.case_id = l.case_id
             AND m.event_type = 'case.resolved' AND m.status = 'delivered'
             AND m.created_at >= f.received_at)) AS closed_loop
FROM (SELECT *, {key} AS key FROM feedback
      WHERE sentiment = 'negative' AND submitted_at >= $1 AND submitted_at < $2) f
LEFT JOIN case_feedback l ON l.feedback_id = f.id
WHERE l.kind IS DISTINCT FROM 'followup'
GROUP BY GROUPING SETS ((key), ())
"""
REFERENCE_CASES = """
WITH cases AS (
    SELECT {key} AS key, c.*,
           extract(epoch FROM c.first_response_at - c.created_at) AS response_seconds,
           extract(epoch FROM c.resolved_at - c.created_at) AS resolution_seconds,
           EXISTS (SELECT FROM outbox_message m WHERE m.case_id = c.id
                   AND m.event_type = 'case.resolved' AND m.status = 'delivered') AS told,
           EXISTS (SELECT FROM case_event e WHERE e.case_id = c.id AND e.type = 'resolved')
               AS ever_resolved,
           EXISTS (SELECT FROM case_event e WHERE e.case_id = c.id AND e.type = 'reopened')
               AS reopened,
           (SELECT count(*) FROM case_feedback a WHERE a.case_id = c.id AND a.kind = 'followup')
               AS answered,
           (SELECT count(*) FROM case_feedback a JOIN feedback fa ON fa.id = a.feedback_id
            WHERE a.case_id = c.id AND a.kind = 'followup' AND fa.sentiment <> 'negative')
               AS recovered,
           (SELECT sum(fa.score - f.score) FROM case_feedback a
            JOIN feedback fa ON fa.id = a.feedback_id
            WHERE a.case_id = c.id AND a.kind = 'followup' AND fa.metric = f.metric)
               AS change_sum,
           (SELECT count(fa.score - f.score) FROM case_feedback a
            JOIN feedback fa ON fa.id = a.feedback_id
            WHERE a.case_id = c.id AND a.kind = 'followup' AND fa.metric = f.metric)
               AS change_count
    FROM feedback_case c
    LEFT JOIN case_feedback o ON o.case_id = c.id AND o.kind = 'opened'
    LEFT JOIN feedback f ON f.id = o.feedback_id
    WHERE c.created_at >= $1 AND c.created_at < $2
)
SELECT GROUPING(key) = 1 AS overall, key, count(*) AS cases_opened,
       count(*) FILTER (WHERE status IN ('resolved', 'closed')) AS cases_resolved,
       count(*) FILTER (WHERE status IN ('open', 'in_progress', 'waiting_on_customer'))
           AS cases_open,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY response_seconds)
           AS first_response_median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY response_seconds)
           AS first_response_p90_seconds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds)
           AS resolution_median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_seconds)
           AS resolution_p90_seconds,
       count(*) FILTER (WHERE first_response_at IS NOT NULL OR first_response_breached)
           AS first_response_decided,
       count(*) FILTER (WHERE first_response_at <= first_response_due_at
                        AND NOT first_response_breached) AS first_response_met,
       count(*) FILTER (WHERE resolved_at IS NOT NULL OR resolution_breached)
           AS resolution_decided,
       count(*) FILTER (WHERE resolved_at <= resolution_due_at AND NOT resolution_breached)
           AS resolution_met,
       count(*) FILTER (WHERE ever_resolved) AS ever_resolved,
       count(*) FILTER (WHERE reopened) AS cases_reopened,
       count(*) FILTER (WHERE told) AS customers_told,
       count(*) FILTER (WHERE told AND answered > 0) AS told_answered,
       coalesce(sum(answered), 0) AS followups_answered,
       coalesce(sum(recovered), 0) AS recovered,
       coalesce(sum(change_sum), 0) AS change_sum,
       coalesce(sum(change_count), 0) AS change_count
FROM cases
GROUP BY GROUPING SETS ((key), ())
"""
SECONDS = [
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
]
EVERYTHING = ("2025-01-01", "2026-12-31")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """case.resolved goes to an endpoint on 127.0.0.1 (never called: delivery is set below)."""
    return webhooks_on_loopback(settings)


@pytest.fixture
async def world(admin: httpx.AsyncClient, database: BoundDatabase) -> random.Random:
    rng = random.Random(20261208)
    await random_answers(database, rng, 400)
    await random_cases(admin, database, rng, 40)
    await compact(database, batch=500)
    return rng


Fetch = Callable[[str, datetime, datetime], Awaitable[Sequence[Mapping[str, Any]]]]


async def reference(fetch: Fetch, group_by: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The report as the raw rows answer it, read by `fetch` (a statement, $1 and $2)."""
    negative_key = {"team": "routing_team"}.get(group_by, group_by)
    case_key = "c.opened_for_team" if group_by == "team" else f"f.{group_by}"
    groups: dict[str | None, dict[str, Any]] = defaultdict(dict)
    overall: dict[str, Any] = {}
    for sql in (
        REFERENCE_NEGATIVE.format(key=negative_key),
        REFERENCE_CASES.format(key=case_key),
    ):
        for row in await fetch(sql, start, end):
            counted = {k: v for k, v in row.items() if k not in ("overall", "key")}
            (overall if row["overall"] else groups[row["key"]]).update(counted)
    empty = {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(SECONDS, None)}
    order = ordered_keys(list(groups), journey=group_by == "journey_stage")
    return {
        "overall": loop_figures(None, {**empty, **overall}),
        "groups": [loop_figures(k, {**empty, **groups[k]}) for k in order],
    }


def raw_fetch(database: BoundDatabase) -> Fetch:
    async def fetch(sql: str, start: datetime, end: datetime) -> Sequence[Mapping[str, Any]]:
        async with database.raw() as conn:
            return [dict(row) for row in await conn.fetch(sql, start, end)]

    return fetch


async def assert_reports_equal_the_raw_rows(
    admin: httpx.AsyncClient, database: BoundDatabase, stage: str
) -> dict[str, Any]:
    """Every grouping over every range; answer the whole span's overall figures."""
    whole: dict[str, Any] = {}
    for group_by, (start_text, end_text) in itertools.product(
        ["team", "channel", "source", "journey_stage"], [*RANGES, EVERYTHING]
    ):
        params = {"group_by": group_by, "from": start_text, "to": end_text, "tz": "Europe/Lisbon"}
        response = await admin.get("/v1/reports/closed-loop", params=params)
        assert response.status_code == 200, response.text
        report = response.json()
        start = datetime.fromisoformat(report["from"])
        end = datetime.fromisoformat(report["to"])
        expected = await reference(raw_fetch(database), group_by, start, end)
        assert report["overall"] == expected["overall"], (stage, params)
        assert report["groups"] == expected["groups"], (stage, params)
        if (start_text, end_text) == EVERYTHING:
            whole = report["overall"]
    return whole


async def marked(database: BoundDatabase) -> int:
    async with database.raw() as conn:
        count = await conn.fetchval("SELECT count(DISTINCT case_id) FROM report_case_dirty")
    assert isinstance(count, int)
    return count


async def later_changes(
    admin: httpx.AsyncClient, database: BoundDatabase, rng: random.Random
) -> None:
    """After a fold: a reopening, a resolution told, a complaint rescored by PUT, an opening
    item deleted, a customer erased."""
    async with database.raw() as conn:
        ids = await conn.fetch(
            "SELECT id, status FROM feedback_case ORDER BY created_at, id",
        )
    resolved = [r["id"] for r in ids if r["status"] == "resolved"]
    active = [r["id"] for r in ids if r["status"] in ("open", "waiting_on_customer")]
    case = await read_case(admin, str(resolved[0]))
    await acted(admin, case, "reopen", {"reason": "still broken"})
    case = await read_case(admin, str(active[0]))
    body = {"code": "fixed", "customer_message": "Done.", "notify_customer": True}
    case = await acted(admin, case, "resolve", body)
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE outbox_message SET status = 'delivered', delivered_at = now() "
            "WHERE case_id = $1 AND event_type = 'case.resolved'",
            uuid.UUID(case["id"]),
        )
    for n in rng.sample(range(40), 6):
        response = await admin.put(
            f"/v1/feedback/{SOURCES[n % len(SOURCES)]}/complaint-{n}",
            json={
                "channel": "sms",
                "customer": {"external_id": f"cus_{n % 37}"},
                "metric": "csat",
                "score": rng.randint(1, 5),
                "journey_stage": "usage",
                "submitted_at": moment(rng).isoformat(),
            },
        )
        assert response.status_code == 200, response.text
    async with database.raw() as conn:
        await conn.execute(
            "DELETE FROM feedback WHERE source = $1 AND external_id = 'complaint-7'",
            SOURCES[7 % len(SOURCES)],
        )
    assert (await admin.delete("/v1/customers/cus_11")).status_code == 204


@pytest.mark.usefixtures("world")
async def test_the_closed_loop_equals_the_raw_rows_folded_or_not(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    rng = random.Random(7)
    assert await marked(database) > 0
    await assert_reports_equal_the_raw_rows(admin, database, "nothing folded")
    await fold(database, batch=7)
    assert await marked(database) == 0
    await afterwards(admin, database, rng)
    await assert_reports_equal_the_raw_rows(admin, database, "later changes unfolded")
    await fold(database)
    whole = await assert_reports_equal_the_raw_rows(admin, database, "everything folded")
    # The data had cases in every state.
    assert whole["cases_opened"] >= 30
    assert whole["cases_open"] > 0
    assert whole["customers_told"] > 0
    assert whole["followups_answered"] > 0
    assert whole["cases_reopened"] > 0
    assert whole["closed_loop"] > 0
    assert whole["first_response_sla_rate"] < 100
    await later_changes(admin, database, rng)
    assert await marked(database) > 0
    await assert_reports_equal_the_raw_rows(admin, database, "a reopening, a resolution, PUTs")
    await fold(database)
    await assert_reports_equal_the_raw_rows(admin, database, "those folded")


@pytest.mark.usefixtures("world")
async def test_what_moves_no_figure_marks_no_case(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    """Erasure, comment retention, a dispatcher's claims and retries and a note leave the facts
    as they are: nothing to fold, nothing for a report to work out again."""
    await fold(database)
    async with database.raw() as conn:
        case_id = await conn.fetchval("SELECT id FROM feedback_case ORDER BY created_at LIMIT 1")
        await conn.execute(
            "UPDATE outbox_message SET attempts = attempts + 1, last_error = 'timeout' "
            "WHERE event_type <> 'case.resolved' OR status <> 'delivered'"
        )
        await conn.execute("UPDATE feedback SET comment = NULL WHERE external_id LIKE 'r-%'")
    case = await read_case(admin, str(case_id))
    await acted(admin, case, "notes", {"body": "Called the customer back."})
    assert (await admin.delete("/v1/customers/cus_3")).status_code == 204
    assert await marked(database) == 0
