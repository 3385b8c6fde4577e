"""The closed-loop report on a month whose answers are known (SPEC §6)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.reports.facts import fold
from app.reports.schemas import ClosedLoopReport
from tests.builders import (
    acted,
    make_team,
    open_case,
    read_case,
    register_endpoint,
    send_feedback,
    webhooks_on_loopback,
)

T = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
RANGE = {"from": "2026-11-01", "to": "2026-12-31"}
NOTICE = {"code": "fixed", "customer_message": "We sorted it out."}
NO_NOTICE = {"code": "fixed", "notify_customer": False}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """case.resolved goes to an endpoint on 127.0.0.1 (it is never called: see `told`)."""
    return webhooks_on_loopback(settings)


async def complaint(
    admin: httpx.AsyncClient, customer: str, *, consent: bool = True, **overrides: Any
) -> dict[str, Any]:
    return await open_case(
        admin,
        customer={"external_id": customer, "contact_consent": consent},
        metric="nps",
        submitted_at="2026-11-10T08:00:00Z",
        external_id=f"{customer}-complaint",
        **overrides,
    )


async def clocks(
    database: BoundDatabase,
    case: dict[str, Any],
    *,
    response: int,
    resolution: int | None,
    resolution_due: int = 86400,
) -> None:
    """Put the case's clocks at known seconds from T (the API sets them to now)."""
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE feedback_case SET created_at = $2, first_response_at = $3, "
            "resolved_at = $4, first_response_due_at = $5, resolution_due_at = $6 WHERE id = $1",
            uuid.UUID(case["id"]),
            T,
            T + timedelta(seconds=response),
            None if resolution is None else T + timedelta(seconds=resolution),
            T + timedelta(hours=1),
            T + timedelta(seconds=resolution_due),
        )


async def told(database: BoundDatabase, case: dict[str, Any]) -> str:
    """The dispatcher delivered the case's case.resolved (its own tests prove it can); answer
    the follow-up token the message carries."""
    async with database.raw() as conn:
        token = await conn.fetchval(
            "UPDATE outbox_message SET status = 'delivered', delivered_at = now() "
            "WHERE case_id = $1 AND event_type = 'case.resolved' "
            "RETURNING convert_from(body, 'UTF8')::jsonb -> 'data' -> 'followup' ->> 'token'",
            uuid.UUID(case["id"]),
        )
    assert isinstance(token, str)
    return token


async def followup(admin: httpx.AsyncClient, case: dict[str, Any], token: str, score: int) -> None:
    await send_feedback(
        admin,
        metric="nps",
        score=score,
        comment=None,
        external_id=f"{case['id']}-followup",
        in_reply_to={"case_id": case["id"], "token": token},
    )


@pytest.fixture
async def november(admin: httpx.AsyncClient, database: BoundDatabase) -> None:
    """Support: A told and won back (2 → 9), B told and not (3 → 1, reopened), C without
    consent, resolved late. Billing: D, with consent, still open. E is a promoter."""
    await make_team(admin, "support")
    await make_team(admin, "billing")
    rule = {
        "name": "refunds",
        "priority": 10,
        "conditions": {"field": "comment", "op": "contains_any", "value": ["refund"]},
        "team": "billing",
    }
    assert (await admin.post("/v1/routing/rules", json=rule)).status_code == 201
    await register_endpoint(admin, "case.resolved", url="http://127.0.0.1:9/hook")

    a = await complaint(admin, "cus_a", score=2, journey_stage="delivery")
    b = await complaint(admin, "cus_b", score=3, journey_stage="delivery")
    c = await complaint(
        admin,
        "cus_c",
        score=0,
        journey_stage="purchase",
        consent=False,
    )
    d = await complaint(
        admin, "cus_d", score=1, comment="I want a refund", journey_stage="purchase"
    )
    await send_feedback(
        admin, metric="nps", score=9, comment=None, submitted_at="2026-11-11T00:00:00Z"
    )

    a = await acted(admin, a, "resolve", NOTICE)
    b = await acted(admin, b, "resolve", NOTICE)
    c = await acted(admin, c, "resolve", NO_NOTICE)
    await followup(admin, a, await told(database, a), 9)
    await followup(admin, b, await told(database, b), 1)
    assert (await read_case(admin, b["id"]))["status"] == "open"
    await clocks(database, a, response=600, resolution=3600)
    await clocks(database, b, response=1200, resolution=None)
    await clocks(database, c, response=1800, resolution=36000, resolution_due=30000)
    await clocks(database, d, response=7200, resolution=None)
    async with database.raw() as conn:  # D answered late, but nobody has flagged it yet
        await conn.execute(
            "UPDATE feedback_case SET first_response_at = NULL, first_response_breached = true "
            "WHERE id = $1",
            uuid.UUID(d["id"]),
        )


async def report(admin: httpx.AsyncClient, group_by: str) -> dict[str, Any]:
    response = await admin.get("/v1/reports/closed-loop", params={"group_by": group_by, **RANGE})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    ClosedLoopReport.model_validate(document)
    return document


@pytest.mark.usefixtures("november")
@pytest.mark.parametrize("folded", [False, True], ids=["from-raw-rows", "from-folded-facts"])
async def test_closed_loop_figures_per_team_are_the_known_answers(
    admin: httpx.AsyncClient, database: BoundDatabase, folded: bool
) -> None:
    if folded:
        assert await fold(database) > 0
    document = await report(admin, "team")
    groups = {g["key"]: g for g in document["groups"]}
    assert list(groups) == ["billing", "support"]
    assert groups["support"] == {
        "key": "support",
        "negative_feedback": 3,
        "negative_with_consent": 2,
        "closed_loop": 2,
        "closed_loop_rate": 100.0,
        "cases_opened": 3,
        "cases_resolved": 2,
        "cases_open": 1,
        "first_response_median_seconds": 1200.0,
        "first_response_p90_seconds": 1680.0,
        "resolution_median_seconds": 19800.0,
        "resolution_p90_seconds": 32760.0,
        "first_response_sla_rate": 100.0,
        "resolution_sla_rate": 50.0,
        "cases_reopened": 1,
        "reopen_rate": 33.33,
        "customers_told": 2,
        "followups_answered": 2,
        "followup_response_rate": 100.0,
        "recovered": 1,
        "recovery_rate": 50.0,
        "mean_score_change": 2.5,
    }
    billing = groups["billing"]
    assert (billing["negative_feedback"], billing["closed_loop_rate"]) == (1, 0.0)
    assert (billing["cases_opened"], billing["cases_open"]) == (1, 1)
    assert billing["first_response_sla_rate"] == 0.0
    assert billing["first_response_median_seconds"] is None
    assert billing["reopen_rate"] is None
    assert billing["recovery_rate"] is None
    overall = document["overall"]
    assert overall["key"] is None
    assert (overall["negative_feedback"], overall["negative_with_consent"]) == (4, 3)
    assert overall["closed_loop_rate"] == 66.67
    assert overall["first_response_sla_rate"] == 75.0  # 3 of 4
    assert overall["first_response_median_seconds"] == 1200.0


@pytest.mark.usefixtures("november")
async def test_closed_loop_by_journey_stage_in_journey_order_and_as_csv(
    admin: httpx.AsyncClient,
) -> None:
    document = await report(admin, "journey_stage")
    assert [(g["key"], g["negative_feedback"], g["cases_opened"]) for g in document["groups"]] == [
        ("purchase", 2, 2),
        ("delivery", 2, 2),
    ]
    response = await admin.get(
        "/v1/reports/closed-loop",
        params={"group_by": "team", **RANGE},
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["key"], r["closed_loop_rate"]) for r in rows] == [
        ("billing", "0.0"),
        ("support", "100.0"),
        ("(all)", "66.67"),
    ]
    assert rows[0]["recovery_rate"] == ""


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "touchpoint"}, "group_by"),
        ({"from": "2027-01-01"}, "to"),
        ({"tz": "Nowhere"}, "tz"),
    ],
)
async def test_bad_closed_loop_parameters_are_a_422_naming_the_parameter(
    admin: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await admin.get(
        "/v1/reports/closed-loop", params={"group_by": "team", **RANGE, **params}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
