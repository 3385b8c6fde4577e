"""A customer erased on request, and their data exported (SPEC §7)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from app.core.config import Settings
from app.core.db import BoundDatabase
from tests.builders import (
    acted,
    open_case,
    read_case,
    register_endpoint,
    send_feedback,
    webhooks_on_loopback,
)

ANA = {"external_id": "cus_42", "email": "ana@example.com", "name": "Ana Lima"}
LATE = "The delivery was late and nobody answered"
WORDS = ("cus_42", "ana@example.com", "Ana Lima", LATE, "still waiting for my refund")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return webhooks_on_loopback(settings)


@pytest.fixture
async def ana(admin: httpx.AsyncClient, database: BoundDatabase) -> dict[str, Any]:
    """Ana complained on the web and by e-mail, was told the outcome, answered the follow-up
    unhappy; two notes on her case, one quoting her. Bob gave feedback too."""
    team = {"key": "support", "name": "S", "first_response_minutes": 60, "resolution_minutes": 600}
    assert (await admin.post("/v1/teams", json=team)).status_code == 201
    await register_endpoint(admin, "*", url="http://127.0.0.1:9/hook")
    case = await open_case(admin, customer=ANA, comment=LATE, submitted_at="2026-11-03T10:00:00Z")
    await send_feedback(
        admin,
        external_id="mail-1",
        channel="email",
        customer={"email": "ana@example.com"},
        metric="csat",
        score=2,
        comment="Still no parcel",
        submitted_at="2026-11-04T10:00:00Z",
    )
    await send_feedback(
        admin,
        external_id="bob-1",
        customer={"external_id": "cus_7", "email": "bob@example.com"},
        score=9,
        comment="Great service from the support team",
        submitted_at="2026-11-05T10:00:00Z",
    )
    for body in ("Ana Lima called twice, angry", "Checked the warehouse stock"):
        response = await admin.post(f"/v1/cases/{case['id']}/notes", json={"body": body})
        assert response.status_code == 201, response.text
    case = await read_case(admin, case["id"])
    notice = {"code": "refunded", "customer_message": "Dear Ana Lima, we refunded you."}
    await acted(admin, case, "resolve", notice)
    async with database.raw() as conn:
        token = await conn.fetchval(
            "SELECT convert_from(body, 'UTF8')::jsonb -> 'data' -> 'followup' ->> 'token' "
            "FROM outbox_message WHERE event_type = 'case.resolved'"
        )
    await send_feedback(
        admin,
        external_id="answer-1",
        customer=None,
        metric="nps",
        score=2,
        comment="still waiting for my refund",
        in_reply_to={"case_id": case["id"], "token": token},
    )
    return case


async def stored_text(database: BoundDatabase) -> str:
    """Every row of every table that may hold the customer, as one text."""
    async with database.raw() as conn:
        rows = await conn.fetch(
            "SELECT to_jsonb(f)::text AS t FROM feedback f UNION ALL "
            "SELECT to_jsonb(c)::text FROM feedback_case c UNION ALL "
            "SELECT to_jsonb(e)::text FROM case_event e UNION ALL "
            "SELECT convert_from(m.body, 'UTF8') FROM outbox_message m UNION ALL "
            "SELECT to_jsonb(a)::text FROM delivery_attempt a UNION ALL "
            "SELECT to_jsonb(x)::text FROM customer_erasure x UNION ALL "
            "SELECT to_jsonb(i)::text FROM customer_identity i"
        )
    return "\n".join(r["t"] for r in rows)


async def figures(admin: httpx.AsyncClient) -> list[Any]:
    period = {"from": "2026-11-01", "to": "2026-12-31"}
    answers = []
    for metric in ("nps", "csat"):
        scores = await admin.get(
            "/v1/reports/scores", params={"metric": metric, "group_by": "channel", **period}
        )
        answers.append(scores.json())
    loop = await admin.get("/v1/reports/closed-loop", params={"group_by": "team", **period})
    answers.append(loop.json())
    return answers


async def test_an_erased_customer_is_gone_everywhere_while_the_figures_stand(
    admin: httpx.AsyncClient, database: BoundDatabase, ana: dict[str, Any]
) -> None:
    before = await figures(admin)
    stored = await stored_text(database)
    assert all(word in stored for word in WORDS)

    response = await admin.delete("/v1/customers/ana@example.com")
    assert response.status_code == 204, response.text

    stored = await stored_text(database)
    for word in WORDS:
        assert word not in stored, word
    assert "Great service from the support team" in stored  # Bob's words are Bob's
    assert "bob@example.com" in stored
    assert "Checked the warehouse stock" in stored  # a note that does not quote her stays
    assert await figures(admin) == before
    assert (await admin.get("/v1/customers/cus_42")).status_code == 404
    case = (await admin.get(f"/v1/cases/{ana['id']}")).json()
    assert case["status"] == "open"  # her unhappy answer reopened it; that stays
    events = (await admin.get(f"/v1/cases/{ana['id']}/events")).json()["items"]
    assert [e["actor"] for e in events if e["type"] == "customer_erased"] == ["test"]
    async with database.raw() as conn:
        audit = await conn.fetchrow("SELECT * FROM customer_erasure")
        scores = await conn.fetch(
            "SELECT metric, score, channel FROM feedback ORDER BY score, metric"
        )
    assert audit is not None
    assert (audit["actor"], audit["feedback_items"], audit["notes"]) == ("test", 3, 1)
    # The e-mail complaint joined her case: the e-mail is linked to her in her record.
    assert audit["case_ids"] == [uuid.UUID(ana["id"])]
    async with database.raw() as conn:
        records = await conn.fetch("SELECT kind, value FROM customer_identity ORDER BY value")
    assert [tuple(r) for r in records] == [("email", "bob@example.com"), ("external_id", "cus_7")]
    assert [tuple(r) for r in scores] == [
        ("csat", 2, "email"),
        ("nps", 2, "web"),
        ("nps", 3, "web"),
        ("nps", 9, "web"),
    ]


async def test_erasing_twice_is_fine_and_a_stranger_to_us_is_a_404(
    admin: httpx.AsyncClient, ana: dict[str, Any]
) -> None:
    assert (await admin.delete("/v1/customers/cus_42")).status_code == 204
    assert (await admin.delete("/v1/customers/cus_42")).status_code == 204
    # Known by an identity linked to the one erased: that one was erased with it.
    assert (await admin.delete("/v1/customers/ANA@example.com")).status_code == 204
    unknown = await admin.delete("/v1/customers/nobody@example.com")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "customer_not_found"


async def test_the_export_holds_everything_about_the_customer(
    admin: httpx.AsyncClient, ana: dict[str, Any]
) -> None:
    response = await admin.get("/v1/customers/cus_42/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="customer-cus_42.json"'
    document = orjson.loads(response.content)
    assert [(i["kind"], i["value"], i["verified"]) for i in document["identities"]] == [
        ("external_id", "cus_42", True),
        ("email", "ana@example.com", True),
    ]
    assert {i["source"] for i in document["identities"]} == {"checkout-web"}
    assert all(i["feedback_id"] is not None for i in document["identities"])
    assert sorted(item["comment"] for item in document["feedback"]) == sorted(
        [LATE, "Still no parcel", "still waiting for my refund"]
    )
    [case] = document["cases"]
    assert case["id"] == ana["id"]
    assert case["customer_name"] == "Ana Lima"
    assert "followup_token_hash" not in case
    assert sorted(link["kind"] for link in case["feedback"]) == ["followup", "joined", "opened"]
    notes = [e["data"]["body"] for e in case["timeline"] if e["type"] == "note_added"]
    assert notes == ["Ana Lima called twice, angry", "Checked the warehouse stock"]
    resolved = [n for n in document["notifications"] if n["event_type"] == "case.resolved"]
    assert [(n["status"], n["deliveries"]) for n in resolved] == [("pending", [])]
    assert resolved[0]["body"]["data"]["resolution"]["customer_message"].startswith("Dear Ana")
    assert (await admin.get("/v1/customers/nobody@example.com/export")).status_code == 404
