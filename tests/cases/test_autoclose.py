"""Closing quiet cases a batch per statement changes each case exactly as closing it by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from app.cases.sla import run_pass
from app.core.config import Settings
from app.core.db import BoundDatabase
from tests.builders import webhooks_on_loopback

WEEK = timedelta(days=7)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A webhook endpoint on loopback, so the outbox gets messages (nothing sends them here).
    return webhooks_on_loopback(settings)


async def _resolved_case(admin: httpx.AsyncClient, customer: str) -> dict[str, Any]:
    body = {
        "source": "checkout-web",
        "channel": "web",
        "metric": "nps",
        "score": 2,
        "customer": {"external_id": customer},
    }
    item = (await admin.post("/v1/feedback", json=body)).json()
    resolved = await admin.post(
        f"/v1/cases/{item['case']['id']}/resolve",
        json={"code": "fixed", "notify_customer": False},
        headers={"If-Match": '"1"'},
    )
    assert resolved.status_code == 200, resolved.text
    case: dict[str, Any] = resolved.json()
    return case


async def _closing(admin: httpx.AsyncClient, case_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The events after the resolution (its last event says no one is told), oldest first."""
    events = (await admin.get(f"/v1/cases/{case_id}/events?limit=100")).json()["items"]
    ordered = sorted(events, key=lambda e: (e["at"], e["id"]))
    types = [e["type"] for e in ordered]
    return [(e["type"], e["data"]) for e in ordered[types.index("notification_skipped") + 1 :]]


async def _messages(database: BoundDatabase, case_id: str) -> dict[str, dict[str, Any]]:
    async with database.raw() as conn:
        rows = await conn.fetch(
            "SELECT event_type, body FROM outbox_message WHERE case_id = $1::uuid "
            "AND event_type IN ('case.status_changed', 'case.closed')",
            case_id,
        )
    return {row["event_type"]: json.loads(row["body"]) for row in rows}


async def test_autoclose_writes_the_events_and_messages_of_a_close_by_hand(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    assert (
        await admin.post(
            "/v1/teams",
            json={
                "key": "support",
                "name": "Support",
                "first_response_minutes": 60,
                "resolution_minutes": 480,
            },
        )
    ).is_success
    endpoint = await admin.post(
        "/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/in", "event_types": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    by_hand = await _resolved_case(admin, "cus_hand")
    quiet = await _resolved_case(admin, "cus_quiet")
    closed = await admin.post(f"/v1/cases/{by_hand['id']}/close", headers={"If-Match": '"2"'})
    assert closed.status_code == 200

    now = datetime.fromisoformat(quiet["resolved_at"]) + WEEK
    result = await run_pass(database.sessionmaker, autoclose_after=WEEK, now=now)

    assert result.closed == 1
    auto = (await admin.get(f"/v1/cases/{quiet['id']}")).json()
    hand = (await admin.get(f"/v1/cases/{by_hand['id']}")).json()
    assert auto["status"] == hand["status"] == "closed"
    assert auto["version"] == hand["version"] == 3
    assert datetime.fromisoformat(auto["closed_at"]) == now
    moved = {"from": "resolved", "to": "closed"}
    assert await _closing(admin, by_hand["id"]) == [("status_changed", moved), ("closed", {})]
    assert await _closing(admin, quiet["id"]) == [
        ("status_changed", moved),
        ("closed", {"reason": "autoclose"}),
    ]
    auto_messages = await _messages(database, quiet["id"])
    hand_messages = await _messages(database, by_hand["id"])
    assert set(auto_messages) == set(hand_messages) == {"case.status_changed", "case.closed"}
    for event_type, message in auto_messages.items():
        expected = hand_messages[event_type]
        assert message["type"] == event_type
        assert message.keys() == expected.keys()
        assert message["data"].keys() == expected["data"].keys()
        assert message["data"]["case"].keys() == expected["data"]["case"].keys()
        assert message["data"]["case"]["id"] == quiet["id"]
        assert message["data"]["case"]["status"] == "closed"
        assert datetime.fromisoformat(message["timestamp"]) == now
    assert auto_messages["case.status_changed"]["data"]["from"] == "resolved"
    assert auto_messages["case.status_changed"]["data"]["to"] == "closed"
