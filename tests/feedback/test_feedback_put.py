"""PUT /v1/feedback/{source}/{external_id}: store or replace an item on purpose (SPEC §7)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, case_events, feedback_body, make_api_key, read_case

URL = "/v1/feedback/checkout-web/resp-1"
# How an item routed to the default team, by no rule, shows its routing.
SUPPORT = {"rule_id": None, "rule_version": None, "team": "support"}


def content(**overrides: Any) -> dict[str, Any]:
    """A PUT body: feedback without its source and id (those are in the path)."""
    body = feedback_body(**overrides)
    del body["source"]
    return body


@pytest.fixture
async def writer(database: BoundDatabase) -> dict[str, str]:
    return auth(await make_api_key(database, "feedback:write", name="survey backend"))


@pytest.fixture
async def ops(database: BoundDatabase) -> dict[str, str]:
    return auth(await make_api_key(database, "admin", name="ops"))


async def put(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, **overrides: Any
) -> dict[str, Any]:
    response = await client.put(URL, json=content(**overrides), headers=headers)
    assert response.status_code == status, response.text
    item: dict[str, Any] = response.json()
    return item


async def test_put_stores_an_item_that_is_not_there(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    item = await put(client, writer, 201, metric="csat", score=5, comment=None)
    assert (item["source"], item["external_id"]) == ("checkout-web", "resp-1")
    assert item["category"] == "positive"
    read = await client.get(f"/v1/feedback/{item['id']}", headers=ops)
    assert read.json() == item


async def test_put_replaces_the_content_and_derives_it_again(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    first = await put(client, writer, 201, metric="nps", score=9, comment="Great")
    second = await put(
        client,
        writer,
        200,
        metric="nps",
        score=7,
        comment="Fine",
        tags=["updated"],
        attributes={"plan": "team"},
        touchpoint="app-home",
        journey_stage="usage",
    )
    assert second["id"] == first["id"]
    assert (second["score"], second["category"], second["sentiment"]) == (7, "passive", "neutral")
    assert (second["comment"], second["tags"]) == ("Fine", ["updated"])
    assert (second["touchpoint"], second["journey_stage"]) == ("app-home", "usage")
    assert second["attributes"] == {"plan": "team"}
    assert second["received_at"] == first["received_at"]
    read = await client.get(f"/v1/feedback/{first['id']}", headers=ops)
    assert read.json() == second


async def test_a_change_to_negative_opens_a_case(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    item = await put(client, writer, 201, metric="nps", score=10, comment="Love it")
    assert item["case"] is None
    changed = await put(client, writer, 200, metric="nps", score=2, comment="It broke")
    assert changed["routing"]["team"] == "support"
    assert changed["case"]["status"] == "open"
    client.headers.update(ops)
    case = await read_case(client, changed["case"]["id"])
    assert [f["id"] for f in case["feedback"]] == [item["id"]]


async def test_a_change_to_positive_leaves_the_case_open_with_an_event(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    item = await put(client, writer, 201, metric="nps", score=2)
    changed = await put(client, writer, 200, metric="nps", score=10, comment="Sorted now")
    assert changed["case"] == item["case"]
    assert changed["routing"] is None
    client.headers.update(ops)
    case = await read_case(client, item["case"]["id"])
    assert case["status"] == "open"
    events = await case_events(client, case["id"])
    assert events[-1]["type"] == "feedback_updated"
    assert events[-1]["actor"] == "survey backend"
    assert events[-1]["data"] == {
        "feedback_id": item["id"],
        "changes": {
            "score": {"from": 2, "to": 10},
            "category": {"from": "detractor", "to": "promoter"},
            "sentiment": {"from": "negative", "to": "positive"},
            "routing": {"from": SUPPORT, "to": None},
        },
        "comment_changed": True,
        "changed": ["score", "comment", "category", "sentiment", "routing"],
    }


async def test_the_event_names_every_field_that_changed_and_no_personal_value(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    """The README's example: the item loses its tags, touchpoint, stage, attributes and the
    customer's locale. Each is named; what the customer wrote or is told by is not copied."""
    item = await put(client, writer, 201)
    readme = {
        "channel": "web",
        "customer": {"external_id": "cus_42", "email": "ana@example.com"},
        "metric": "nps",
        "score": 8,
        "comment": "Arrived in the end",
    }
    response = await client.put(URL, json=readme, headers=writer)
    assert response.status_code == 200, response.text
    client.headers.update(ops)
    [event] = [
        e for e in await case_events(client, item["case"]["id"]) if e["type"] == "feedback_updated"
    ]
    assert event["data"] == {
        "feedback_id": item["id"],
        "changes": {
            "score": {"from": 3, "to": 8},
            "tags": {"from": ["delivery"], "to": []},
            "touchpoint": {"from": "order-tracking", "to": None},
            "journey_stage": {"from": "delivery", "to": None},
            "category": {"from": "detractor", "to": "passive"},
            "sentiment": {"from": "negative", "to": "neutral"},
            "routing": {"from": SUPPORT, "to": None},
        },
        "comment_changed": True,
        "changed": [
            "customer.locale",
            "score",
            "comment",
            "tags",
            "touchpoint",
            "journey_stage",
            "attributes.order_id",
            "attributes.plan",
            "category",
            "sentiment",
            "routing",
        ],
    }
    told = json.dumps(event["data"])
    for personal in ("pt-BR", "A-1009", '"pro"', "late", "Arrived"):
        assert personal not in told


async def test_a_new_contact_is_named_without_its_values(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    item = await put(client, writer, 201)
    customer = {"external_id": "cus_42", "email": "ana@example.org", "phone": "+351912345678"}
    await put(client, writer, 200, customer={**customer, "locale": "pt-BR", "name": "Ana"})
    client.headers.update(ops)
    event = (await case_events(client, item["case"]["id"]))[-1]
    assert event["type"] == "feedback_updated"
    assert event["data"]["changes"] == {}
    assert event["data"]["comment_changed"] is False
    assert event["data"]["changed"] == ["customer.email", "customer.phone", "customer.name"]
    told = json.dumps(event["data"])
    for personal in ("ana@", "351912345678", "Ana"):
        assert personal not in told


async def test_content_that_differs_only_as_sent_writes_no_event(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    """An e-mail address is stored in lower case: the item as stored does not change."""
    item = await put(client, writer, 201)
    customer = {"external_id": "cus_42", "email": "Ana@Example.com", "locale": "pt-BR"}
    again = await put(client, writer, 200, customer=customer)
    assert again == item
    client.headers.update(ops)
    assert [e["type"] for e in await case_events(client, item["case"]["id"])] == ["created"]


async def test_the_same_content_again_changes_nothing(
    client: httpx.AsyncClient, writer: dict[str, str], ops: dict[str, str]
) -> None:
    item = await put(client, writer, 201)
    again = await put(client, writer, 200)
    assert again == item
    client.headers.update(ops)
    assert [e["type"] for e in await case_events(client, item["case"]["id"])] == ["created"]


async def test_another_key_cannot_see_or_replace_it_but_an_admin_can(
    client: httpx.AsyncClient,
    writer: dict[str, str],
    ops: dict[str, str],
    database: BoundDatabase,
) -> None:
    await put(client, writer, 201, score=3)
    other = auth(await make_api_key(database, "feedback:write", "feedback:read", name="other"))
    refused = await client.put(URL, json=content(score=9), headers=other)
    assert refused.status_code == 404
    assert refused.json()["code"] == "feedback_not_found"
    by_admin = await client.put(URL, json=content(score=9), headers=ops)
    assert by_admin.status_code == 200
    assert by_admin.json()["score"] == 9


async def test_after_a_put_the_new_content_replays_and_the_old_conflicts(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    await put(client, writer, 201, score=3)
    await put(client, writer, 200, score=9)
    new = feedback_body(external_id="resp-1", score=9)
    old = feedback_body(external_id="resp-1", score=3)
    assert (await client.post("/v1/feedback", json=new, headers=writer)).status_code == 200
    assert (await client.post("/v1/feedback", json=old, headers=writer)).status_code == 409


async def test_a_put_body_is_validated_as_feedback(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await client.put(URL, json=content(metric="csat", score=9), headers=writer)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["score"]
    extra = await client.put(URL, json={**content(), "source": "other"}, headers=writer)
    assert extra.status_code == 422


async def test_a_source_the_key_may_not_send_is_refused(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    limited = auth(await make_api_key(database, "feedback:write", allowed_sources=["ios-app"]))
    response = await client.put(URL, json=content(), headers=limited)
    assert response.status_code == 403
    assert response.json()["code"] == "source_denied"


async def test_an_external_id_may_hold_a_slash(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await client.put(
        "/v1/feedback/checkout-web/orders/1009", json=content(), headers=writer
    )
    assert response.status_code == 201, response.text
    assert response.json()["external_id"] == "orders/1009"
