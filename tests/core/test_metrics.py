"""GET /metrics: Prometheus text that a Prometheus parser reads, for a `reports:read` key only."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.core.db import BoundDatabase
from tests.builders import auth, feedback_body, make_api_key, webhooks_on_loopback


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Webhook endpoints on loopback (nothing listens there: these tests send nothing).
    return webhooks_on_loopback(settings)


async def _scrape(
    client: httpx.AsyncClient, key: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics", headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_feedback_and_ingest_statements(
    admin: httpx.AsyncClient, admin_key: str, database: BoundDatabase
) -> None:
    reader = await make_api_key(database, "reports:read")
    before = await _scrape(admin, reader)
    created = await admin.post("/v1/feedback", json=feedback_body(channel="app"))
    assert created.status_code == 201
    batch = await admin.post(
        "/v1/feedback/batch",
        json={
            "items": [
                feedback_body(external_id=f"m-{i}", channel="phone", score=10, customer=None)
                for i in range(3)
            ]
        },
    )
    assert batch.status_code == 200
    after = await _scrape(admin, reader)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    request = {"method": "POST", "route": "/v1/feedback", "status": "201"}
    assert grew("closeloop_http_request_duration_seconds_count", **request) == 1
    assert grew("closeloop_http_request_duration_seconds_bucket", **request, le="+Inf") == 1
    assert grew("closeloop_feedback_stored_total", channel="app", category="detractor") == 1
    assert grew("closeloop_feedback_stored_total", channel="phone", category="promoter") == 3
    # One single-item statement and one of three.
    assert grew("closeloop_ingest_group_size_count") == 2
    assert grew("closeloop_ingest_group_size_sum") == 4
    assert _value(after, "closeloop_outbox_backlog_up") == 1


async def test_cases_opened_are_counted_by_team_and_joins_are_not(
    admin: httpx.AsyncClient, admin_key: str, database: BoundDatabase
) -> None:
    reader = await make_api_key(database, "reports:read")
    before = await _scrape(admin, reader)
    first = await admin.post("/v1/feedback", json=feedback_body(external_id="o-1"))
    assert first.status_code == 201
    team = first.json()["case"]["team"]
    # The same customer again joins the case: no case opened.
    joined = await admin.post("/v1/feedback", json=feedback_body(external_id="o-2"))
    assert joined.json()["case"]["id"] == first.json()["case"]["id"]
    batch = await admin.post(
        "/v1/feedback/batch",
        json={
            "items": [
                feedback_body(external_id=f"o-b{i}", customer={"external_id": f"cus_o{i}"})
                for i in range(2)
            ]
            + [feedback_body(external_id="o-b9", customer={"external_id": "cus_o0"})]
        },
    )
    assert [r["status"] for r in batch.json()["results"]] == ["created"] * 3
    # PUT making a promoter negative opens its case too.
    promoter = feedback_body(score=10, comment=None, customer={"external_id": "cus_o7"})
    del promoter["source"]
    assert (await admin.put("/v1/feedback/checkout-web/o-p", json=promoter)).status_code == 201
    assert (
        await admin.put("/v1/feedback/checkout-web/o-p", json={**promoter, "score": 0})
    ).is_success
    after = await _scrape(admin, reader)
    opened = _value(after, "closeloop_cases_opened_total", team=team)
    assert opened - _value(before, "closeloop_cases_opened_total", team=team) == 4


async def test_unmatched_paths_share_one_label(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    reader = await make_api_key(database, "reports:read")
    for path in ("/nowhere/cus_42", "/nowhere/ana@example.com"):
        assert (await admin.get(path)).status_code == 404
    samples = await _scrape(admin, reader)
    routes = {dict(labels).get("route") for name, labels in samples if "http_request" in name}
    assert "unmatched" in routes
    assert not any(route and "nowhere" in route for route in routes)


async def test_the_outbox_backlog_is_read_from_the_database(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    reader = await make_api_key(database, "reports:read")
    endpoint = await admin.post(
        "/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/in", "event_types": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    assert (await admin.post("/v1/feedback", json=feedback_body())).status_code == 201
    samples = await _scrape(admin, reader)
    # feedback.received and case.opened, both due now: nothing sends them in this test.
    assert _value(samples, "closeloop_outbox_pending_messages") == 2
    assert _value(samples, "closeloop_outbox_oldest_due_age_seconds") >= 0


async def test_a_stranger_reads_no_metrics(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    publishable = await make_api_key(database, "feedback:write", publishable=True)
    writer = await make_api_key(database, "feedback:write", "cases:write")
    assert (await client.get("/metrics")).status_code == 401
    for key in (publishable, writer):
        response = await client.get("/metrics", headers=auth(key))
        assert response.status_code == 403
        assert response.json()["code"] == "insufficient_scope"
