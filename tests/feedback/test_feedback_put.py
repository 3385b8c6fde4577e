"""PUT /v1/feedback/{source}/{external_id}: store or replace an item on purpose (SPEC §7)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, case_events, feedback_body, make_api_key, read_case

URL = "/v1/feedback/checkout-web/resp-1"


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
        },
        "comment_changed": True,
    }


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
