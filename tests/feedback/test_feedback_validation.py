"""Bad feedback gets a 422 problem naming the field, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import feedback_body

CUSTOMER = {"external_id": "c1"}

BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    ("nps over 10", feedback_body(score=11), "score", "score_out_of_range"),
    ("csat of 0", feedback_body(metric="csat", score=0), "score", "score_out_of_range"),
    ("ces of 8", feedback_body(metric="ces", score=8), "score", "score_out_of_range"),
    ("fractional score", feedback_body(score=7.5), "score", "int_type"),
    ("score as a string", feedback_body(score="7"), "score", "int_type"),
    ("unknown metric", feedback_body(metric="ltr"), "metric", "enum"),
    ("unknown channel", feedback_body(channel="fax"), "channel", "enum"),
    ("score without metric", feedback_body(metric=None), "score", "metric_missing"),
    ("metric without score", feedback_body(score=None), "score", "score_missing"),
    (
        "neither score nor comment",
        feedback_body(metric=None, score=None, comment=None),
        "comment",
        "score_or_comment",
    ),
    (
        "blank comment alone",
        feedback_body(metric=None, score=None, comment="   "),
        "comment",
        "score_or_comment",
    ),
    ("comment too long", feedback_body(comment="x" * 10_001), "comment", "string_too_long"),
    ("51 tags", feedback_body(tags=[f"t{i}" for i in range(51)]), "tags", "too_long"),
    (
        "51 attributes",
        feedback_body(attributes={f"k{i}": i for i in range(51)}),
        "attributes",
        "too_long",
    ),
    (
        "nested attribute",
        feedback_body(attributes={"plan": {"tier": "pro"}}),
        "attributes.plan",
        "attribute_not_flat",
    ),
    (
        "list attribute",
        feedback_body(attributes={"ids": [1, 2]}),
        "attributes.ids",
        "attribute_not_flat",
    ),
    (
        "invalid e-mail",
        feedback_body(customer={"email": "not-an-email"}),
        "customer.email",
        "email_invalid",
    ),
    (
        "unparseable timestamp",
        feedback_body(submitted_at="last tuesday"),
        "submitted_at",
        "datetime_from_date_parsing",
    ),
    ("source not a slug", feedback_body(source="Checkout Web"), "source", "slug_invalid"),
    ("source with a slash", feedback_body(source="a/b"), "source", "slug_invalid"),
    ("unknown field", feedback_body(nps=3), "nps", "extra_forbidden"),
    ("missing source", {"channel": "web", "comment": "hi"}, "source", "missing"),
    ("invalid journey stage", feedback_body(journey_stage="checkout"), "journey_stage", "enum"),
    (
        "invalid phone",
        feedback_body(customer={"phone": "call me"}),
        "customer.phone",
        "phone_invalid",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [pytest.param(b, f, k, id=name) for name, b, f, k in BAD_BODIES],
)
async def test_bad_feedback_is_a_422_naming_the_field(
    writer: httpx.AsyncClient, body: dict[str, Any], field: str, kind: str
) -> None:
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert problem["status"] == 422
    assert {"field": field, "type": kind} in [
        {"field": e["field"], "type": e["type"]} for e in problem["errors"]
    ]
    listed = await writer.get("/v1/feedback")
    assert listed.json()["items"] == []


async def test_the_score_error_says_the_scale(writer: httpx.AsyncClient) -> None:
    response = await writer.post("/v1/feedback", json=feedback_body(metric="csat", score=9))
    assert response.json()["errors"] == [
        {"field": "score", "message": "csat scores run from 1 to 5", "type": "score_out_of_range"}
    ]


async def test_a_problem_does_not_echo_the_input(writer: httpx.AsyncClient) -> None:
    body = feedback_body(customer={"email": "secret-person.example.com"})
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert "secret-person" not in response.text


async def test_malformed_json_is_a_400_problem(writer: httpx.AsyncClient) -> None:
    response = await writer.post(
        "/v1/feedback", content=b'{"source": "web",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "malformed_json"


async def test_a_json_array_instead_of_an_object_is_a_422(writer: httpx.AsyncClient) -> None:
    response = await writer.post("/v1/feedback", json=[feedback_body()])
    assert response.status_code == 422


async def test_a_naive_timestamp_is_taken_as_utc(writer: httpx.AsyncClient) -> None:
    body = feedback_body(submitted_at="2026-11-20T10:30:00")
    response = await writer.post("/v1/feedback", json=body)
    assert response.status_code == 201
    assert response.json()["submitted_at"] == "2026-11-20T10:30:00Z"
