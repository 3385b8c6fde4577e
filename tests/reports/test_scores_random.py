"""The scores report against a direct computation, on random data (SPEC §6).

Random answers over two years, in every channel and stage, are stored; for each metric, grouping
and time zone the report must equal what plain Python computes from the same rows.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.core.db import BoundDatabase
from app.core.vocabulary import SCALES, Metric
from app.reports.scores import rounded

CHANNELS = ["web", "app", "email", "sms"]
STAGES = ["purchase", "delivery", "usage", None]
START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def rows(database: BoundDatabase) -> list[dict[str, Any]]:
    rng = random.Random(20261207)
    made = []
    for _ in range(600):
        metric = rng.choice(list(Metric))
        low, high = SCALES[metric]
        made.append(
            {
                "id": uuid.uuid4(),
                "metric": metric.value,
                "score": rng.randint(low, high),
                "channel": rng.choice(CHANNELS),
                "journey_stage": rng.choice(STAGES),
                "submitted_at": START + timedelta(seconds=rng.randint(0, 730 * 86400)),
            }
        )
    async with database.raw() as conn:
        await conn.executemany(
            "INSERT INTO feedback (id, source, channel, metric, score, journey_stage, sentiment, "
            "submitted_at, received_at) VALUES ($1, 'src', $2, $3, $4, $5, 'neutral', $6, $6)",
            [
                (
                    r["id"],
                    r["channel"],
                    r["metric"],
                    r["score"],
                    r["journey_stage"],
                    r["submitted_at"],
                )
                for r in made
            ],
        )
    return made


def expected_score(metric: str, scores: list[int]) -> float | None:
    if not scores:
        return None
    n = len(scores)
    if metric == "nps":
        return rounded(
            Fraction(100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)), n)
        )
    if metric == "ces":
        return rounded(Fraction(sum(scores), n))
    return rounded(Fraction(100 * sum(s >= 4 for s in scores), n))


def bucket(moment: datetime, group_by: str, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    if group_by == "day":
        return local.date().isoformat()
    if group_by == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


@pytest.mark.parametrize("tz", ["UTC", "Europe/Lisbon", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("group_by", ["channel", "journey_stage", "day", "week", "month"])
async def test_the_report_equals_a_direct_computation(
    admin: httpx.AsyncClient, rows: list[dict[str, Any]], tz: str, group_by: str
) -> None:
    zone = ZoneInfo(tz)
    first, last = date(2025, 3, 20), date(2026, 3, 31)  # across both changes of clock
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    for metric in Metric:
        response = await admin.get(
            "/v1/reports/scores",
            params={
                "metric": metric.value,
                "group_by": group_by,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "tz": tz,
            },
        )
        assert response.status_code == 200, response.text
        report = response.json()
        groups: dict[str | None, list[int]] = defaultdict(list)
        for r in rows:
            if r["metric"] == metric.value and start <= r["submitted_at"] < end:
                key = (
                    bucket(r["submitted_at"], group_by, zone)
                    if group_by in ("day", "week", "month")
                    else r[group_by]
                )
                groups[key].append(r["score"])
        got = {g["key"]: (g["count"], g["score"], g["distribution"]) for g in report["groups"]}
        low, high = SCALES[metric]
        assert got == {
            key: (
                len(scores),
                expected_score(metric.value, scores),
                {str(s): Counter(scores)[s] for s in range(low, high + 1)},
            )
            for key, scores in groups.items()
        }
        everything = [s for scores in groups.values() for s in scores]
        assert report["overall"]["count"] == len(everything)
        assert report["overall"]["score"] == expected_score(metric.value, everything)
