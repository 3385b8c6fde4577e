"""The scores report on data whose answers are known (SPEC §6)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from app.reports.schemas import ScoresReport
from tests.builders import send_feedback


@pytest.fixture
async def support(admin: httpx.AsyncClient) -> None:
    """A default team, so negative answers open cases as in production."""
    response = await admin.post(
        "/v1/teams",
        json={
            "key": "support",
            "name": "Support",
            "first_response_minutes": 60,
            "resolution_minutes": 1440,
        },
    )
    assert response.status_code == 201, response.text


async def answer(
    admin: httpx.AsyncClient, metric: str, score: int, at: str, **overrides: Any
) -> None:
    await send_feedback(
        admin,
        metric=metric,
        score=score,
        submitted_at=at,
        comment=None,
        customer=None,
        tags=None,
        attributes=None,
        **overrides,
    )


async def scores(admin: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await admin.get("/v1/reports/scores", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    ScoresReport.model_validate(report)  # the document built by hand is the documented one
    return report


def by_key(report: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {group["key"]: group for group in report["groups"]}


NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


@pytest.mark.usefixtures("support")
async def test_nps_by_journey_stage_is_promoters_minus_detractors_in_journey_order(
    admin: httpx.AsyncClient,
) -> None:
    for score, stage in [(10, "purchase"), (9, "purchase"), (8, "purchase"), (3, "purchase")]:
        await answer(admin, "nps", score, "2026-11-03T10:00:00Z", journey_stage=stage)
    for score in (0, 6, 10):
        await answer(admin, "nps", score, "2026-11-04T10:00:00Z", journey_stage="delivery")
    await answer(admin, "nps", 9, "2026-11-05T10:00:00Z", journey_stage=None)
    await answer(admin, "nps", 0, "2026-10-31T23:59:59Z", journey_stage="purchase")  # October
    await answer(admin, "csat", 1, "2026-11-05T10:00:00Z", journey_stage="purchase")  # not NPS

    report = await scores(admin, metric="nps", group_by="journey_stage", **NOVEMBER)

    assert [g["key"] for g in report["groups"]] == ["purchase", "delivery", None]
    purchase, delivery, unstaged = report["groups"]
    assert purchase | {"distribution": None} == {
        "key": "purchase",
        "count": 4,
        "score": 25.0,  # (2 - 1) / 4
        "promoters": 2,
        "passives": 1,
        "detractors": 1,
        "distribution": None,
    }
    assert purchase["distribution"] == {
        **{str(s): 0 for s in range(11)},
        "10": 1,
        "9": 1,
        "8": 1,
        "3": 1,
    }
    assert (delivery["score"], delivery["count"]) == (-33.33, 3)  # (1 - 2) / 3
    assert (unstaged["score"], unstaged["promoters"]) == (100.0, 1)
    overall = report["overall"]
    assert (overall["count"], overall["promoters"], overall["detractors"]) == (8, 4, 3)
    assert overall["score"] == 12.5  # (4 - 3) / 8


@pytest.mark.usefixtures("support")
async def test_csat_and_star_are_the_share_of_fours_and_fives_and_ces_the_mean(
    admin: httpx.AsyncClient,
) -> None:
    for score in (5, 4, 3, 1):
        await answer(admin, "csat", score, "2026-11-10T10:00:00Z", channel="email")
    for score in (5, 2, 1):
        await answer(admin, "csat", score, "2026-11-10T10:00:00Z", channel="web")
    for score in (7, 6, 2):
        await answer(admin, "ces", score, "2026-11-10T10:00:00Z", channel="web")
    await answer(admin, "star", 4, "2026-11-10T10:00:00Z", channel="app")

    csat = by_key(await scores(admin, metric="csat", group_by="channel", **NOVEMBER))
    assert (csat["email"]["score"], csat["web"]["score"]) == (50.0, 33.33)
    assert csat["email"]["distribution"] == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 1}
    assert "promoters" not in csat["email"] or csat["email"]["promoters"] is None
    ces = await scores(admin, metric="ces", group_by="channel", **NOVEMBER)
    assert ces["overall"]["score"] == 5.0
    assert ces["overall"]["distribution"]["6"] == 1
    star = await scores(admin, metric="star", group_by="channel", **NOVEMBER)
    assert [(g["key"], g["score"], g["count"]) for g in star["groups"]] == [("app", 100.0, 1)]
    filtered = await scores(admin, metric="csat", group_by="channel", channel="web", **NOVEMBER)
    assert [g["key"] for g in filtered["groups"]] == ["web"]


@pytest.mark.usefixtures("support")
async def test_days_follow_the_time_zone_through_25_and_23_hour_days(
    admin: httpx.AsyncClient,
) -> None:
    # Lisbon leaves summer time on 25 October 2026 (a 25-hour day, 24T23:00Z to 25T23:00Z)
    # and enters it on 29 March 2026 (a 23-hour day, 29T00:00Z to 29T23:00Z).
    for at in (
        "2026-10-24T22:30:00Z",  # 24th, 23:30 +01
        "2026-10-24T23:30:00Z",  # 25th, 00:30 +01
        "2026-10-25T23:30:00Z",  # 25th, 23:30 +00
        "2026-10-26T00:30:00Z",  # 26th
        "2026-03-29T22:30:00Z",  # 29th, 23:30 +01
        "2026-03-29T23:30:00Z",  # 30th, 00:30 +01
    ):
        await answer(admin, "csat", 5, at)
    lisbon = {"tz": "Europe/Lisbon", "group_by": "day", "metric": "csat"}

    autumn = await scores(admin, **lisbon, **{"from": "2026-10-24", "to": "2026-10-26"})
    assert [(g["key"], g["count"]) for g in autumn["groups"]] == [
        ("2026-10-24", 1),
        ("2026-10-25", 2),
        ("2026-10-26", 1),
    ]
    one_day = await scores(admin, **lisbon, **{"from": "2026-10-25", "to": "2026-10-25"})
    assert one_day["overall"]["count"] == 2
    assert one_day["from"] == "2026-10-25T00:00:00+01:00"
    assert one_day["to"] == "2026-10-26T00:00:00Z"
    spring = await scores(admin, **lisbon, **{"from": "2026-03-29", "to": "2026-03-30"})
    assert [(g["key"], g["count"]) for g in spring["groups"]] == [
        ("2026-03-29", 1),
        ("2026-03-30", 1),
    ]
    utc = await scores(
        admin, metric="csat", group_by="day", **{"from": "2026-10-24", "to": "2026-10-26"}
    )
    assert [(g["key"], g["count"]) for g in utc["groups"]] == [
        ("2026-10-24", 2),
        ("2026-10-25", 1),
        ("2026-10-26", 1),
    ]
    weeks = await scores(
        admin,
        metric="csat",
        group_by="week",
        tz="Europe/Lisbon",
        **{"from": "2026-03-01", "to": "2026-10-31"},
    )
    assert [(g["key"], g["count"]) for g in weeks["groups"]] == [
        ("2026-W13", 1),
        ("2026-W14", 1),
        ("2026-W43", 3),
        ("2026-W44", 1),
    ]
    months = await scores(
        admin,
        metric="csat",
        group_by="month",
        tz="Europe/Lisbon",
        **{"from": "2026-01-01", "to": "2026-12-31"},
    )
    assert [(g["key"], g["count"]) for g in months["groups"]] == [("2026-03", 2), ("2026-10", 4)]


@pytest.mark.usefixtures("support")
async def test_scores_open_in_a_spreadsheet_and_as_a_chart(admin: httpx.AsyncClient) -> None:
    for score, stage in [(10, "purchase"), (2, "delivery"), (9, "usage")]:
        await answer(admin, "nps", score, "2026-11-03T10:00:00Z", journey_stage=stage)
    await answer(
        admin, "nps", 9, "2026-11-03T10:00:00Z", touchpoint='=HYPERLINK("x")', journey_stage=None
    )
    params = {"metric": "nps", "group_by": "journey_stage", **NOVEMBER}

    response = await admin.get("/v1/reports/scores", params=params, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["key"], r["score"], r["count"]) for r in rows] == [
        ("purchase", "100.0", "1"),
        ("delivery", "-100.0", "1"),
        ("usage", "100.0", "1"),
        ("", "100.0", "1"),
        ("(all)", "50.0", "4"),
    ]
    assert rows[0]["score_10"] == "1"
    by_touchpoint = await admin.get(
        "/v1/reports/scores",
        params={**params, "group_by": "touchpoint"},
        headers={"Accept": "text/csv"},
    )
    assert "'=HYPERLINK" in by_touchpoint.content.decode("utf-8-sig")

    chart = await admin.get("/v1/reports/scores.svg", params=params)
    assert chart.status_code == 200, chart.text
    assert chart.headers["content-type"] == "image/svg+xml"
    svg = chart.text
    assert svg.startswith("<svg")
    assert "<script" not in svg
    assert svg.index(">purchase<") < svg.index(">delivery<") < svg.index(">usage<")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metric": "mood"}, "metric"),
        ({"group_by": "planet"}, "group_by"),
        ({"from": "2026-12-01"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"tz": "Mars/Olympus"}, "tz"),
        # A channel no item can have, as GET /v1/feedback refuses it (it was an empty report).
        ({"channel": "fax"}, "channel"),
        ({"group_by": "day", "from": "2025-01-01", "to": "2026-11-30"}, "to"),
    ],
)
async def test_bad_parameters_are_a_422_naming_the_parameter(
    admin: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    query = {"metric": "nps", "group_by": "channel", **NOVEMBER, **params}
    for path in ("/v1/reports/scores", "/v1/reports/scores.svg"):
        response = await admin.get(path, params=query)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_a_long_range_is_fine_by_month(admin: httpx.AsyncClient) -> None:
    report = await scores(
        admin, metric="nps", group_by="month", **{"from": "2024-01-01", "to": "2026-11-30"}
    )
    assert report["groups"] == []
    assert report["overall"]["count"] == 0
    assert report["overall"]["score"] is None


@pytest.mark.usefixtures("support")
async def test_a_late_item_and_a_put_count_where_they_now_belong(admin: httpx.AsyncClient) -> None:
    params = {"metric": "nps", "group_by": "channel", **NOVEMBER}
    await answer(admin, "nps", 10, "2026-11-03T10:00:00Z", channel="web")
    before = await scores(admin, **params)
    assert before["overall"]["score"] == 100.0

    # A late item: stored today, given in November, counts in November.
    await answer(admin, "nps", 0, "2026-11-20T10:00:00Z", channel="web", external_id="late")
    late = await scores(admin, **params)
    assert (late["overall"]["count"], late["overall"]["score"]) == (2, 0.0)

    # The same item changed on purpose: it moves channel and score, and the figures with it.
    body = {
        "channel": "email",
        "metric": "nps",
        "score": 9,
        "submitted_at": "2026-11-20T10:00:00Z",
        "comment": "Fixed, thanks",
    }
    response = await admin.put("/v1/feedback/checkout-web/late", json=body)
    assert response.status_code == 200, response.text
    after = by_key(await scores(admin, **params))
    assert (after["web"]["count"], after["web"]["score"]) == (1, 100.0)
    assert (after["email"]["count"], after["email"]["score"]) == (1, 100.0)
