"""The SLA monitor: breaches flagged once per kind, escalation, quiet cases closed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from app.cases.sla import run_pass
from app.core.db import BoundDatabase
from tests.builders import feedback_body, make_team

WEEK = timedelta(days=7)


async def _team(admin: httpx.AsyncClient, key: str, **overrides: Any) -> None:
    await make_team(admin, key, **{"resolution_minutes": 480, **overrides})


async def _case(admin: httpx.AsyncClient, customer: str = "cus_1") -> dict[str, Any]:
    body = feedback_body(customer={"external_id": customer})
    item = (await admin.post("/v1/feedback", json=body)).json()
    case: dict[str, Any] = (await admin.get(f"/v1/cases/{item['case']['id']}")).json()
    return case


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _events(admin: httpx.AsyncClient, case_id: str, kind: str) -> list[dict[str, Any]]:
    events = (await admin.get(f"/v1/cases/{case_id}/events")).json()["items"]
    return [e for e in events if e["type"] == kind]


async def test_a_missed_first_response_is_flagged_once(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await _team(admin, "support")
    case = await _case(admin)
    due = _at(case["first_response_due_at"])

    before = await run_pass(
        database.sessionmaker, autoclose_after=WEEK, now=due - timedelta(seconds=1)
    )
    assert before.first_response_breaches == 0
    first = await run_pass(database.sessionmaker, autoclose_after=WEEK, now=due)
    again = await run_pass(
        database.sessionmaker, autoclose_after=WEEK, now=due + timedelta(minutes=5)
    )
    assert (first.first_response_breaches, again.first_response_breaches) == (1, 0)

    read = await admin.get(f"/v1/cases/{case['id']}")
    flagged = read.json()
    assert flagged["first_response_breached"] is True
    assert flagged["resolution_breached"] is False
    assert flagged["breached"] is True
    assert flagged["version"] == case["version"] + 1
    assert read.headers["etag"] == f'"{flagged["version"]}"'
    breaches = await _events(admin, case["id"], "sla_breached")
    assert [(e["data"]["kind"], e["actor"]) for e in breaches] == [("first_response", "system")]


async def test_a_missed_resolution_is_flagged_once_too(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await _team(admin, "support")
    case = await _case(admin)
    taken = await admin.patch(
        f"/v1/cases/{case['id']}", json={"status": "in_progress"}, headers={"If-Match": '"1"'}
    )
    assert taken.status_code == 200
    due = _at(case["resolution_due_at"])
    for minutes in (0, 1, 60):
        await run_pass(
            database.sessionmaker, autoclose_after=WEEK, now=due + timedelta(minutes=minutes)
        )
    flagged = (await admin.get(f"/v1/cases/{case['id']}")).json()
    assert flagged["resolution_breached"] is True
    # The first response came in time (the move out of `open`).
    assert flagged["first_response_breached"] is False
    kinds = [e["data"]["kind"] for e in await _events(admin, case["id"], "sla_breached")]
    assert kinds == ["resolution"]


async def test_a_breach_escalates_to_the_escalation_team(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await _team(admin, "support")
    await _team(admin, "tier2")
    await admin.patch("/v1/teams/support", json={"escalation_team": "tier2"})
    case = await _case(admin)
    await run_pass(
        database.sessionmaker, autoclose_after=WEEK, now=_at(case["first_response_due_at"])
    )
    escalated = (await admin.get(f"/v1/cases/{case['id']}")).json()
    assert escalated["team"] == "tier2"
    events = await _events(admin, case["id"], "escalated")
    assert [(e["data"]["from"], e["data"]["to"]) for e in events] == [("support", "tier2")]
    queue = await admin.get("/v1/cases", params={"team": "tier2", "breached": "true"})
    assert [c["id"] for c in queue.json()["items"]] == [case["id"]]


async def test_no_breach_while_waiting_on_the_customer(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await _team(admin, "support")
    case = await _case(admin)
    url = f"/v1/cases/{case['id']}"
    await admin.patch(url, json={"status": "in_progress"}, headers={"If-Match": '"1"'})
    await admin.patch(url, json={"status": "waiting_on_customer"}, headers={"If-Match": '"2"'})
    result = await run_pass(
        database.sessionmaker, autoclose_after=WEEK, now=_at(case["resolution_due_at"]) + WEEK
    )
    assert result.resolution_breaches == 0
    assert (await admin.get(url)).json()["breached"] is False


async def test_resolved_cases_close_after_a_quiet_period(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await _team(admin, "support")
    quiet = await _case(admin, "cus_quiet")
    reopened = await _case(admin, "cus_reopened")
    for case in (quiet, reopened):
        resolved = await admin.post(
            f"/v1/cases/{case['id']}/resolve",
            json={"code": "fixed", "notify_customer": False},
            headers={"If-Match": '"1"'},
        )
        assert resolved.status_code == 200
    await admin.post(
        f"/v1/cases/{reopened['id']}/reopen",
        json={"reason": "still broken"},
        headers={"If-Match": '"2"'},
    )
    resolved_at = _at((await admin.get(f"/v1/cases/{quiet['id']}")).json()["resolved_at"])

    early = await run_pass(database.sessionmaker, autoclose_after=WEEK, now=resolved_at + WEEK / 2)
    assert early.closed == 0
    late = await run_pass(database.sessionmaker, autoclose_after=WEEK, now=resolved_at + WEEK)
    assert late.closed == 1
    closed = (await admin.get(f"/v1/cases/{quiet['id']}")).json()
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert [e["actor"] for e in await _events(admin, quiet["id"], "closed")] == ["system"]
    assert (await admin.get(f"/v1/cases/{reopened['id']}")).json()["status"] == "open"
