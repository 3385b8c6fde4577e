"""POST/GET /v1/feedback: storing, deriving, idempotency, batches, listing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import auth, feedback_body, make_api_key


async def test_posted_feedback_is_stored_with_category_and_sentiment(
    writer: httpx.AsyncClient,
) -> None:
    response = await writer.post("/v1/feedback", json=feedback_body())
    assert response.status_code == 201
    item = response.json()
    assert item["category"] == "detractor"
    assert item["sentiment"] == "negative"
    # No team exists yet: negative feedback still gets one, the fallback default.
    assert item["routing"] == {"rule_id": None, "rule_version": None, "team": "support"}
    assert item["case"]["team"] == "support"
    assert item["case"]["status"] == "open"
    assert item["case"]["number"].startswith("C-")
    assert item["customer"]["email"] == "ana@example.com"
    assert item["customer"]["contact_consent"] is True
    assert item["attributes"] == {"plan": "pro", "order_id": "A-1009"}
    assert item["submitted_at"] == item["received_at"]

    again = await writer.get(f"/v1/feedback/{item['id']}")
    assert again.status_code == 200
    assert again.json() == item


@pytest.mark.parametrize(
    ("metric", "score", "category", "sentiment"),
    [
        ("nps", 0, "detractor", "negative"),
        ("nps", 6, "detractor", "negative"),
        ("nps", 7, "passive", "neutral"),
        ("nps", 8, "passive", "neutral"),
        ("nps", 9, "promoter", "positive"),
        ("csat", 2, "negative", "negative"),
        ("csat", 3, "neutral", "neutral"),
        ("csat", 4, "positive", "positive"),
        ("star", 1, "negative", "negative"),
        ("star", 5, "positive", "positive"),
        ("ces", 3, "negative", "negative"),
        ("ces", 4, "neutral", "neutral"),
        ("ces", 5, "positive", "positive"),
    ],
)
async def test_each_metric_is_categorised_on_its_scale(
    writer: httpx.AsyncClient, metric: str, score: int, category: str, sentiment: str
) -> None:
    response = await writer.post(
        "/v1/feedback", json=feedback_body(metric=metric, score=score, comment=None)
    )
    assert response.status_code == 201, response.text
    assert (response.json()["category"], response.json()["sentiment"]) == (category, sentiment)


async def test_comment_only_feedback_takes_sentiment_from_the_text(
    writer: httpx.AsyncClient,
) -> None:
    body = feedback_body(metric=None, score=None, comment="我要退款，太慢了")
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["category"] is None
    assert response.json()["sentiment"] == "negative"


async def test_a_comment_without_score_shows_the_cues_that_decided_it(
    writer: httpx.AsyncClient,
) -> None:
    body = feedback_body(metric=None, score=None, comment="東西不錯，但是物流太慢")
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 201, response.text
    cues = ["praise:不错", "contrast:但是", "intensity:太", "criticism:慢"]
    assert (response.json()["sentiment"], response.json()["sentiment_cues"]) == ("negative", cues)
    again = await writer.get(f"/v1/feedback/{response.json()['id']}")
    assert again.json()["sentiment_cues"] == cues
    listed = await writer.get("/v1/feedback", params={"source": body["source"]})
    assert [item["sentiment_cues"] for item in listed.json()["items"]] == [cues]


async def test_a_score_leaves_no_cues(writer: httpx.AsyncClient) -> None:
    response = await writer.post("/v1/feedback", json=feedback_body(comment="Not good at all"))
    assert response.status_code == 201, response.text
    assert response.json()["sentiment_cues"] == []


async def test_any_script_round_trips_unchanged(writer: httpx.AsyncClient) -> None:
    comment = "配送太慢了 😡 — التوصيل متأخر جدا — משלוח איטי 🚚"
    body = feedback_body(comment=comment, tags=["配送", "تأخير"], attributes={"城市": "上海"})
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 201
    item = (await writer.get(f"/v1/feedback/{response.json()['id']}")).json()
    assert item["comment"] == comment
    assert item["tags"] == ["配送", "تأخير"]
    assert item["attributes"] == {"城市": "上海"}


async def test_personal_data_in_comments_is_masked(writer: httpx.AsyncClient) -> None:
    body = feedback_body(comment="Write to me at ana.silva@example.com or call +44 20 7946 0958")
    item = (await writer.post("/v1/feedback", json=body)).json()
    assert "ana.silva@example.com" not in item["comment"]
    assert "7946" not in item["comment"]


async def test_same_source_and_external_id_replays_the_first(writer: httpx.AsyncClient) -> None:
    first = await writer.post("/v1/feedback", json=feedback_body(external_id="resp-1"))
    again = await writer.post("/v1/feedback", json=feedback_body(external_id="resp-1"))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    listed = await writer.get("/v1/feedback", params={"source": "checkout-web"})
    assert len(listed.json()["items"]) == 1


async def test_same_source_and_external_id_with_other_content_is_a_409(
    writer: httpx.AsyncClient,
) -> None:
    first = await writer.post("/v1/feedback", json=feedback_body(external_id="resp-1"))
    other = await writer.post("/v1/feedback", json=feedback_body(external_id="resp-1", score=9))
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "conflict"
    assert other.json()["existing_id"] == first.json()["id"]
    assert first.json()["id"] in other.json()["detail"]
    item = (await writer.get(f"/v1/feedback/{first.json()['id']}")).json()
    assert item["score"] == 3


async def test_idempotency_key_replays_and_refuses_another_body(
    writer: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "order-1009-survey"}
    first = await writer.post("/v1/feedback", json=feedback_body(), headers=headers)
    again = await writer.post("/v1/feedback", json=feedback_body(), headers=headers)
    other = await writer.post("/v1/feedback", json=feedback_body(score=10), headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"


async def test_idempotency_keys_are_scoped_to_the_api_key(
    writer: httpx.AsyncClient, database: BoundDatabase
) -> None:
    headers = {"Idempotency-Key": "same"}
    first = await writer.post("/v1/feedback", json=feedback_body(), headers=headers)
    other_key = await make_api_key(database, "feedback:write")
    second = await writer.post(
        "/v1/feedback", json=feedback_body(score=9), headers={**headers, **auth(other_key)}
    )
    assert first.status_code == 201
    assert second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


async def test_a_time_offset_postgresql_cannot_read_is_stored_as_its_instant(
    writer: httpx.AsyncClient,
) -> None:
    """ISO 8601 allows offsets up to ±23:59, PostgreSQL reads ±15:59: once a 500 (found by the
    fuzzer)."""
    one = await writer.post(
        "/v1/feedback", json=feedback_body(submitted_at="2026-03-27T10:21:52.5013-20:47")
    )
    assert one.status_code == 201, one.text
    batch = await writer.post(
        "/v1/feedback/batch",
        json={"items": [feedback_body(submitted_at="2026-03-27T10:21:52+20:47")]},
    )
    assert [r["status"] for r in batch.json()["results"]] == ["created"]
    stored = [
        (await writer.get(f"/v1/feedback/{i}")).json()["submitted_at"]
        for i in (one.json()["id"], batch.json()["results"][0]["id"])
    ]
    assert [datetime.fromisoformat(t) for t in stored] == [
        datetime(2026, 3, 28, 7, 8, 52, 501300, tzinfo=UTC),
        datetime(2026, 3, 26, 13, 34, 52, tzinfo=UTC),
    ]


async def test_batch_stores_valid_items_and_answers_each(writer: httpx.AsyncClient) -> None:
    await writer.post("/v1/feedback", json=feedback_body(external_id="old"))
    items: list[dict[str, Any]] = [
        feedback_body(external_id="b-1"),
        feedback_body(external_id="b-2", score=11),
        feedback_body(external_id="old"),
        feedback_body(external_id="b-1"),
        feedback_body(external_id=None, metric=None, score=None, comment="Ótimo atendimento!"),
        {"source": "Not A Slug", "channel": "web", "comment": "x"},
    ]
    response = await writer.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "created",
        "error",
        "replayed",
        "replayed",
        "created",
        "error",
    ]
    assert results[3]["id"] == results[0]["id"]
    assert results[1]["problem"]["status"] == 422
    assert results[1]["problem"]["errors"][0]["field"] == "score"
    assert results[5]["problem"]["errors"][0]["field"] == "source"
    stored = await writer.get(f"/v1/feedback/{results[4]['id']}")
    assert stored.json()["sentiment"] == "positive"
    listed = await writer.get("/v1/feedback", params={"limit": 200})
    assert len(listed.json()["items"]) == 3


async def test_batch_over_a_thousand_items_is_refused(writer: httpx.AsyncClient) -> None:
    items = [feedback_body(external_id=f"x-{i}") for i in range(1001)]
    response = await writer.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items"


async def test_list_filters_and_pages_with_a_cursor(writer: httpx.AsyncClient) -> None:
    for i in range(5):
        body = feedback_body(
            external_id=f"p-{i}",
            score=2 + i * 2,
            submitted_at=f"2026-11-0{i + 1}T10:00:00Z",
            channel="app" if i % 2 else "web",
        )
        assert (await writer.post("/v1/feedback", json=body)).status_code == 201
    page = await writer.get("/v1/feedback", params={"limit": 2})
    first = page.json()
    assert [i["external_id"] for i in first["items"]] == ["p-4", "p-3"]
    page2 = await writer.get("/v1/feedback", params={"limit": 2, "cursor": first["next_cursor"]})
    second = page2.json()
    assert [i["external_id"] for i in second["items"]] == ["p-2", "p-1"]
    last = (
        await writer.get("/v1/feedback", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()
    assert [i["external_id"] for i in last["items"]] == ["p-0"]
    assert last["next_cursor"] is None

    async def ids(**params: Any) -> list[str]:
        response = await writer.get("/v1/feedback", params=params)
        assert response.status_code == 200, response.text
        return [i["external_id"] for i in response.json()["items"]]

    assert await ids(channel="app") == ["p-3", "p-1"]
    assert await ids(category="detractor") == ["p-2", "p-1", "p-0"]
    assert await ids(sentiment="positive") == ["p-4"]
    assert await ids(metric="csat") == []
    assert await ids(
        submitted_from="2026-11-02T00:00:00Z", submitted_to="2026-11-04T00:00:00Z"
    ) == [
        "p-2",
        "p-1",
    ]
    assert len(await ids(customer="ANA@example.com")) == 5
    assert len(await ids(customer="cus_42")) == 5
    assert await ids(customer="someone-else") == []


async def test_a_tampered_cursor_is_a_clear_problem(writer: httpx.AsyncClient) -> None:
    response = await writer.get("/v1/feedback", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


async def test_unknown_feedback_is_404(writer: httpx.AsyncClient) -> None:
    response = await writer.get("/v1/feedback/0190d6a4-0000-7000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "feedback_not_found"


async def test_customer_phone_matches_in_any_format(writer: httpx.AsyncClient) -> None:
    body = feedback_body(customer={"phone": "+351 912-345-678"})
    item = (await writer.post("/v1/feedback", json=body)).json()
    assert item["customer"]["phone"] == "+351912345678"
    listed = await writer.get("/v1/feedback", params={"customer": "+351 912 345 678"})
    assert [i["id"] for i in listed.json()["items"]] == [item["id"]]
