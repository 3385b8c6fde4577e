"""The scores report reads rollups (app/reports/rollups.py); on random data it must equal a
direct computation on the raw rows, written here in plain SQL (SPEC §6). (The closed loop reads
the raw rows themselves: tests/reports/test_closed_loop.py checks it on known data.)

Random answers over fourteen months (both changes of clock, every metric, channel, source,
team, touchpoint and stage), complaints whose cases go through every state (answered, waiting,
resolved with and without notice, told, answered back, reopened, closed, flagged late), then
what moves figures afterwards: PUTs, late items, items moved by a direct UPDATE, a deleted item,
an erasure and comment retention; with part of the counts folded and part not.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.core.vocabulary import SCALES, Metric
from app.reports.rollups import compact
from app.reports.scores import figures, ordered_keys
from tests.builders import (
    acted,
    make_team,
    register_endpoint,
    send_feedback,
    webhooks_on_loopback,
)

START = datetime(2025, 2, 1, tzinfo=UTC)
SPAN = timedelta(days=425)
TEAMS = ["alpha", "beta", "gamma"]
CHANNELS = ["web", "app", "email", "sms"]
SOURCES = ["shop", "survey", "support-desk"]
STAGES = ["purchase", "delivery", "usage", None]
TOUCHPOINTS = ["checkout", "returns", None]
ZONES = ["UTC", "Europe/Lisbon", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
# Date ranges across both changes of clock, and instants that cut hours and days.
RANGES = [
    ("2025-03-01", "2026-03-31"),
    ("2025-10-26", "2025-11-02"),
    ("2025-03-29T10:17:00", "2025-11-03T04:45:30"),
    ("2025-06-30T23:59:59+05:45", "2025-07-01T00:00:01Z"),
]
UNITS = {
    "day": ("day", "YYYY-MM-DD"),
    "week": ("week", 'IYYY-"W"IW'),
    "month": ("month", "YYYY-MM"),
}
COLUMNS = {
    "channel": "channel",
    "source": "source",
    "team": "routing_team",
    "touchpoint": "touchpoint",
    "journey_stage": "journey_stage",
}

REFERENCE_SCORES = """
SELECT {key} AS key, score, count(*) FROM feedback
WHERE metric = $1 AND score IS NOT NULL AND submitted_at >= $2 AND submitted_at < $3
GROUP BY 1, 2
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """case.resolved goes to an endpoint on 127.0.0.1 (never called: delivery is set below)."""
    return webhooks_on_loopback(settings)


def moment(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))


async def random_answers(
    database: BoundDatabase, rng: random.Random, count: int, *, prefix: str = "r"
) -> None:
    """Answers stored straight into the table, as another writer would: one statement a row,
    or (`prefix` other than r) many rows in one COPY."""
    rows = []
    for n in range(count):
        metric = rng.choice(list(Metric))
        low, high = SCALES[metric]
        score = rng.randint(low, high)
        at = moment(rng)
        rows.append(
            (
                uuid.uuid4(),
                rng.choice(SOURCES),
                rng.choice(CHANNELS),
                f"{prefix}-{n}",
                metric.value,
                score,
                rng.choice(TOUCHPOINTS),
                rng.choice(STAGES),
                rng.choice([*TEAMS, None]),
                "negative" if score <= 2 else "neutral",
                at,
                at + timedelta(seconds=rng.randrange(0, 90 * 86400)),  # late items too
            )
        )
    columns = [
        "id",
        "source",
        "channel",
        "external_id",
        "metric",
        "score",
        "touchpoint",
        "journey_stage",
        "routing_team",
        "sentiment",
        "submitted_at",
        "received_at",
    ]
    async with database.raw() as conn:
        if prefix != "r":
            await conn.copy_records_to_table("feedback", records=rows, columns=columns)
            return
        await conn.executemany(
            f"INSERT INTO feedback ({', '.join(columns)}, comment) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'words')",
            rows,
        )


async def random_cases(
    admin: httpx.AsyncClient, database: BoundDatabase, rng: random.Random, count: int
) -> None:
    """Complaints through the API, each case taken through a random part of its life."""
    for team in TEAMS:
        await make_team(admin, team)
        rule = {
            "name": f"to {team}",
            "priority": 10 + TEAMS.index(team),
            "conditions": {"field": "touchpoint", "op": "eq", "value": team},
            "team": team,
        }
        assert (await admin.post("/v1/routing/rules", json=rule)).status_code == 201
    await register_endpoint(admin, "case.resolved", url="http://127.0.0.1:9/hook")
    for n in range(count):
        customer = f"cus_{n % (count - 3)}"  # a few complain twice: their item joins the case
        item = await send_feedback(
            admin,
            source=SOURCES[n % len(SOURCES)],
            channel=rng.choice(CHANNELS),
            external_id=f"complaint-{n}",
            customer={"external_id": customer, "contact_consent": rng.random() < 0.7},
            metric=rng.choice(["nps", "csat"]),
            score=rng.randint(1, 2),
            touchpoint=rng.choice(TEAMS),
            journey_stage=rng.choice(STAGES),
            submitted_at=moment(rng).isoformat(),
        )
        case = (await admin.get(f"/v1/cases/{item['case']['id']}")).json()
        if case["status"] != "open":
            continue
        # Opened at a random moment of the span, its clocks relative to that.
        opened = moment(rng)
        async with database.raw() as conn:
            await conn.execute(
                "UPDATE feedback_case SET created_at = $2::timestamptz, first_response_due_at = "
                "$2::timestamptz + interval '1 hour', resolution_due_at = $2::timestamptz + "
                "interval '1 day' WHERE id = $1",
                uuid.UUID(case["id"]),
                opened,
            )
        case = (await admin.get(f"/v1/cases/{case['id']}")).json()
        roll = rng.random()
        if roll < 0.2:
            continue  # still open
        case = await acted(admin, case, "", {"status": "in_progress"})
        if roll < 0.35:
            await acted(admin, case, "", {"status": "waiting_on_customer"})
            continue
        notify = rng.random() < 0.7
        body = {"code": "fixed", "customer_message": "Sorted.", "notify_customer": notify}
        case = await acted(admin, case, "resolve", body)
        if notify and rng.random() < 0.8:
            async with database.raw() as conn:
                token = await conn.fetchval(
                    "UPDATE outbox_message SET status = 'delivered', delivered_at = now() "
                    "WHERE case_id = $1 AND event_type = 'case.resolved' "
                    "RETURNING convert_from(body, 'UTF8')::jsonb -> 'data' -> 'followup' "
                    "->> 'token'",
                    uuid.UUID(case["id"]),
                )
            if token and rng.random() < 0.6:
                await send_feedback(
                    admin,
                    metric="nps",
                    score=rng.randint(0, 10),
                    comment=None,
                    external_id=f"{case['id']}-followup",
                    in_reply_to={"case_id": case["id"], "token": token},
                )
                case = (await admin.get(f"/v1/cases/{case['id']}")).json()
        if case["status"] == "resolved" and rng.random() < 0.2:
            case = await acted(admin, case, "reopen", {"reason": "not fixed"})
        elif case["status"] == "resolved" and rng.random() < 0.3:
            case = await acted(admin, case, "close")
        # Clocks at random seconds from the opening; some flagged late by the monitor.
        async with database.raw() as conn:
            await conn.execute(
                "UPDATE feedback_case SET first_response_at = created_at + $2 * interval '1 s', "
                "resolved_at = CASE WHEN resolved_at IS NOT NULL "
                "THEN created_at + $3 * interval '1 s' END, first_response_breached = $4, "
                "resolution_breached = $5 WHERE id = $1",
                uuid.UUID(case["id"]),
                rng.randrange(60, 7200),
                rng.randrange(600, 200_000),
                rng.random() < 0.2,
                rng.random() < 0.2,
            )


async def afterwards(admin: httpx.AsyncClient, database: BoundDatabase, rng: random.Random) -> None:
    """What moves figures after the fact, and what must not move them."""
    for n in rng.sample(range(40), 12):  # PUT: another score, channel, stage, submitted time
        response = await admin.put(
            f"/v1/feedback/{SOURCES[n % len(SOURCES)]}/complaint-{n}",
            json={
                "channel": rng.choice(CHANNELS),
                "customer": {"external_id": f"cus_{n % 37}"},
                "metric": "nps",
                "score": rng.randint(0, 10),
                "journey_stage": rng.choice(STAGES),
                "submitted_at": moment(rng).isoformat(),
            },
        )
        assert response.status_code == 200, response.text
    async with database.raw() as conn:
        # Items moved in time, rescored and one deleted, by whoever writes the table.
        await conn.execute(
            "UPDATE feedback SET submitted_at = submitted_at - interval '37 days 5 hours' "
            "WHERE external_id LIKE 'r-1%'"
        )
        await conn.execute(
            "UPDATE feedback SET score = 1, channel = 'email' WHERE external_id LIKE 'r-2%' "
            "AND metric IN ('csat', 'star')"
        )
        await conn.execute("DELETE FROM feedback WHERE external_id = 'r-3'")
        # Comment retention blanks text and contact, nothing counted.
        await conn.execute(
            "UPDATE feedback SET comment = NULL, customer_email = NULL "
            "WHERE external_id LIKE 'r-4%'"
        )
    assert (await admin.delete("/v1/customers/cus_5")).status_code == 204
    async with database.raw() as conn:  # the dispatcher delivers the rest of the notices late
        delivered = await conn.execute(
            "UPDATE outbox_message SET status = 'delivered', delivered_at = now() "
            "WHERE event_type = 'case.resolved' AND status <> 'delivered'"
        )
    assert delivered != "UPDATE 0"


@pytest.fixture
async def world(admin: httpx.AsyncClient, database: BoundDatabase) -> None:
    rng = random.Random(20261207)
    await random_answers(database, rng, 700)
    await random_cases(admin, database, rng, 40)
    await compact(database, batch=500)  # part folded, part not
    await random_answers(database, rng, 60, prefix="late")
    await afterwards(admin, database, rng)


async def reference_scores(
    database: BoundDatabase, metric: Metric, group_by: str, tz: str, start: datetime, end: datetime
) -> dict[str, Any]:
    if group_by in UNITS:
        unit, pattern = UNITS[group_by]
        key = f"to_char(date_trunc('{unit}', timezone('{tz}', submitted_at)), '{pattern}')"
    else:
        key = COLUMNS[group_by]
    async with database.raw() as conn:
        rows = await conn.fetch(REFERENCE_SCORES.format(key=key), metric.value, start, end)
    groups: dict[str | None, dict[int, int]] = defaultdict(dict)
    overall: dict[int, int] = defaultdict(int)
    for row in rows:
        groups[row["key"]][row["score"]] = row["count"]
        overall[row["score"]] += row["count"]
    order = ordered_keys(list(groups), journey=group_by == "journey_stage")
    return {
        "groups": [figures(metric, k, groups[k]) for k in order],
        "overall": figures(metric, None, overall),
    }


@pytest.mark.usefixtures("world")
async def test_scores_from_rollups_equal_the_raw_rows(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    for tz, (start_text, end_text) in itertools.product(ZONES, RANGES):
        for group_by in [*COLUMNS, *UNITS]:
            for metric in Metric:
                params = {
                    "metric": metric.value,
                    "group_by": group_by,
                    "from": start_text,
                    "to": end_text,
                    "tz": tz,
                }
                response = await admin.get("/v1/reports/scores", params=params)
                assert response.status_code == 200, response.text
                report = response.json()
                start = datetime.fromisoformat(report["from"])
                end = datetime.fromisoformat(report["to"])
                expected = await reference_scores(database, metric, group_by, tz, start, end)
                assert report["overall"] == expected["overall"], params
                assert report["groups"] == expected["groups"], params
