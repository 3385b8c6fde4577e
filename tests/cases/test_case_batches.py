"""Complaints that meet in one batch: their cases open or join in one statement, and end as if
each complaint had been sent alone, one after the other."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.config import Settings
from tests.builders import feedback_body, open_case, read_case, register_endpoint
from tests.builders import webhooks_on_loopback as loopback
from tests.cases.helpers import make_rule, make_team, mentions, person, tagging_rules, timeline

pytestmark = pytest.mark.usefixtures("support")

# What a case says that its complaints decide.
_DECIDED = ("status", "priority", "tags", "team", "version", "customer", "can_notify", "rule")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An endpoint on 127.0.0.1 may subscribe, so the outbox rows show (nothing delivers them)."""
    return loopback(settings)


@pytest.fixture
async def hook(admin: httpx.AsyncClient) -> None:
    await register_endpoint(admin, "case.opened", url="http://127.0.0.1:9/hook")


async def send_batch(admin: httpx.AsyncClient, items: list[dict[str, Any]]) -> list[str]:
    response = await admin.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * len(items)
    return [r["id"] for r in results]


async def case_of(admin: httpx.AsyncClient, feedback_id: str) -> dict[str, Any]:
    item = (await admin.get(f"/v1/feedback/{feedback_id}")).json()
    assert item["case"] is not None, item
    return await read_case(admin, item["case"]["id"])


async def case_opened(connection: AsyncConnection) -> list[dict[str, Any]]:
    """The case blocks of the case.opened messages written, oldest first."""
    found = await connection.execute(
        text(
            "SELECT convert_from(body, 'UTF8') FROM outbox_message "
            "WHERE event_type = 'case.opened' ORDER BY created_at, id"
        )
    )
    return [json.loads(body)["data"]["case"] for (body,) in found]


def complaints(customer: str) -> list[dict[str, Any]]:
    """Three complaints of one customer, who gives an e-mail only in the second: a rule each,
    the second more urgent than the first, the third less."""
    return [
        feedback_body(comment="The app is slow", customer=person(customer)),
        feedback_body(
            comment="I want a refund", customer=person(customer, email=f"{customer}@example.com")
        ),
        feedback_body(comment="There is a typo", customer=person(customer)),
    ]


@pytest.mark.usefixtures("hook")
async def test_a_batch_leaves_a_case_as_the_same_complaints_sent_one_by_one(
    admin: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    await tagging_rules(admin)
    alone = [await open_case(admin, **body) for body in complaints("cus_alone")]
    batched = await case_of(admin, (await send_batch(admin, complaints("cus_batch")))[0])

    single = alone[-1]
    assert {f: batched[f] for f in _DECIDED if f != "customer"} == {
        f: single[f] for f in _DECIDED if f != "customer"
    }
    assert (batched["priority"], batched["tags"], batched["version"]) == (
        "high",
        ["speed", "refund", "money", "copy"],
        3,
    )
    assert batched["customer"]["email"] == "cus_batch@example.com"
    assert [f["kind"] for f in batched["feedback"]] == [f["kind"] for f in single["feedback"]]
    for case in (single, batched):
        events = await timeline(admin, case["id"])
        assert [e["type"] for e in events] == ["created", "feedback_added", "feedback_added"]
        assert [e["data"]["feedback_id"] for e in events] == [
            f["id"] for f in reversed(case["feedback"])
        ]
    # Each case.opened tells the case as its first complaint opened it, with that one only.
    told_alone, told_batched = await case_opened(connection)
    for told, case in ((told_alone, single), (told_batched, batched)):
        assert told["id"] == case["id"]
        assert (told["priority"], told["customer"]["email"]) == ("normal", None)
        assert [f["id"] for f in told["feedback"]] == [case["feedback"][-1]["id"]]
        assert told["created_at"] == told["updated_at"]


async def test_one_customers_complaints_for_two_teams_in_one_batch_open_a_case_each(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "billing")
    await make_rule(admin, "billing", mentions("refund", "charged"), priority=1)
    ids = await send_batch(
        admin,
        [
            feedback_body(comment="I want a refund"),
            feedback_body(comment="The parcel is late"),
            feedback_body(comment="I was charged twice"),
            feedback_body(comment="The parcel is still late"),
        ],
    )
    cases = [await case_of(admin, feedback_id) for feedback_id in ids]
    assert [c["team"] for c in cases] == ["billing", "support", "billing", "support"]
    assert cases[0]["id"] == cases[2]["id"] != cases[1]["id"] == cases[3]["id"]
    for opened, joined in ((0, 2), (1, 3)):
        case = cases[joined]
        assert [(f["id"], f["kind"]) for f in case["feedback"]] == [
            (ids[joined], "joined"),
            (ids[opened], "opened"),
        ]
        assert case["version"] == 2


@pytest.mark.usefixtures("hook")
async def test_complaints_without_a_customer_in_one_batch_open_a_case_each(
    admin: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    ids = await send_batch(
        admin, [feedback_body(customer=None, comment=f"Broken, take {n}") for n in range(3)]
    )
    cases = [await case_of(admin, feedback_id) for feedback_id in ids]
    assert len({c["id"] for c in cases}) == 3
    for feedback_id, case in zip(ids, cases, strict=True):
        assert [(f["id"], f["kind"]) for f in case["feedback"]] == [(feedback_id, "opened")]
        assert (case["version"], case["can_notify"]) == (1, False)
    assert sorted(c["id"] for c in await case_opened(connection)) == sorted(c["id"] for c in cases)


@pytest.mark.usefixtures("hook")
async def test_a_batch_joins_the_open_case_of_a_returning_customer(
    admin: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    opened = await open_case(admin, comment="The parcel is late")
    ids = await send_batch(
        admin,
        [
            feedback_body(comment="Still late"),
            feedback_body(comment="Broken on arrival", customer=person("cus_new")),
            feedback_body(comment="And nobody answers"),
        ],
    )
    joined, new, again = [await case_of(admin, feedback_id) for feedback_id in ids]
    assert joined["id"] == again["id"] == opened["id"] != new["id"]
    assert [f["kind"] for f in again["feedback"]] == ["joined", "joined", "opened"]
    assert again["version"] == 3
    events = await timeline(admin, opened["id"])
    assert [e["type"] for e in events] == ["created", "feedback_added", "feedback_added"]
    assert [e["data"]["feedback_id"] for e in events][1:] == [ids[0], ids[2]]
    # Only the new customer's case was opened: the joins tell nothing.
    assert [c["id"] for c in await case_opened(connection)] == [opened["id"], new["id"]]
