"""Helpers of the case tests: teams, rules, customers, moves, queues."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import httpx

from app.core.db import BoundDatabase
from tests.builders import make_rule, make_team

__all__ = ["make_rule", "make_team"]  # the case tests take it from here with the other helpers

NUMBER = re.compile(r"^C-\d+$")
PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
CASE_FIELDS = {
    "id",
    "number",
    "status",
    "priority",
    "team",
    "assignee",
    "customer",
    "feedback",
    "tags",
    "rule",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "first_response_breached",
    "resolution_breached",
    "breached",
    "resolution",
    "can_notify",
    "version",
    "created_at",
    "updated_at",
}
NO_NOTICE = {"code": "fixed", "notify_customer": False}
UNKNOWN_CASE = "/v1/cases/00000000-0000-7000-8000-000000000000"


def mentions(*words: str) -> dict[str, Any]:
    return {"field": "comment", "op": "contains_any", "value": list(words)}


async def tagging_rules(admin: httpx.AsyncClient) -> None:
    """Three rules of one team that each tag a complaint and set its priority: "slow" (speed),
    "refund" (high; refund, speed, money) and "typo" (low; copy)."""
    await make_rule(admin, "support", mentions("slow"), priority=1, add_tags=["speed"])
    await make_rule(
        admin,
        "support",
        mentions("refund"),
        priority=2,
        case_priority="high",
        add_tags=["refund", "speed", "money"],
    )
    await make_rule(
        admin, "support", mentions("typo"), priority=3, case_priority="low", add_tags=["copy"]
    )


def person(external_id: str | None = None, **details: Any) -> dict[str, Any]:
    """A customer block: only what is given."""
    return {"external_id": external_id, **details} if external_id else details


def if_match(case: dict[str, Any]) -> dict[str, str]:
    return {"If-Match": f'"{case["version"]}"'}


async def change(
    admin: httpx.AsyncClient, case: dict[str, Any], action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    """PATCH the case (action "") or POST one of its actions, with its current If-Match."""
    url = f"/v1/cases/{case['id']}"
    if not action:
        return await admin.patch(url, json=body or {}, headers=if_match(case))
    return await admin.post(f"{url}/{action}", json=body, headers=if_match(case))


async def changed(
    admin: httpx.AsyncClient, case: dict[str, Any], action: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await change(admin, case, action, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def move_to(admin: httpx.AsyncClient, case: dict[str, Any], status: str) -> dict[str, Any]:
    """Drive an open case to `status` along allowed moves."""
    if status in ("in_progress", "waiting_on_customer"):
        case = await changed(admin, case, "", {"status": "in_progress"})
    if status == "waiting_on_customer":
        case = await changed(admin, case, "", {"status": "waiting_on_customer"})
    if status in ("resolved", "closed"):
        case = await changed(admin, case, "resolve", NO_NOTICE)
    if status == "closed":
        case = await changed(admin, case, "close")
    assert case["status"] == status
    return case


async def timeline(admin: httpx.AsyncClient, case_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await admin.get(f"/v1/cases/{case_id}/events", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


async def queue(admin: httpx.AsyncClient, **params: Any) -> list[str]:
    """The numbers of the cases a queue shows, in its order."""
    response = await admin.get("/v1/cases", params=params)
    assert response.status_code == 200, response.text
    return [c["number"] for c in response.json()["items"]]


async def set_column(
    database: BoundDatabase, case: dict[str, Any], column: str, value: Any
) -> None:
    """Change a case's row behind the API's back, to build a queue worth sorting."""
    async with database.raw() as conn:
        await conn.execute(
            f"UPDATE feedback_case SET {column} = $2 WHERE id = $1", uuid.UUID(case["id"]), value
        )


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)
