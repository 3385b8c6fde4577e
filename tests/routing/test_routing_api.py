"""Teams, the rule table, evaluate, backtest, and routing at ingestion (SPEC §3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import BoundDatabase
from app.feedback.reads import negative_items
from app.main import create_app
from app.routing import evaluation
from app.routing.evaluation import GENERATION_CHECK_SECONDS, backtest, build_table
from tests.builders import (
    auth,
    feedback_body,
    make_api_key,
    make_rule,
    make_team,
    rule_body,
    team_body,
)

# The example table of SPEC §3, as an admin would write it.
REFUND_WORDS = ["refund", "退款", "退錢", "reembolso", "devolução"]
SPEC_CONDITIONS: dict[str, Any] = {
    "all": [
        {"field": "category", "op": "eq", "value": "detractor"},
        {"field": "channel", "op": "in", "value": ["app", "web"]},
        {
            "any": [
                {"field": "comment", "op": "contains_any", "value": REFUND_WORDS},
                {"field": "attributes.plan", "op": "eq", "value": "enterprise"},
            ]
        },
        {"not": {"field": "tags", "op": "has_any", "value": ["test"]}},
    ]
}


async def make_teams(admin: httpx.AsyncClient, *keys: str) -> None:
    for key in keys:
        await make_team(admin, key)


@pytest.fixture
async def table(admin: httpx.AsyncClient) -> dict[str, Any]:
    """support (default), billing, accounts; refunds to billing, enterprise to accounts."""
    await make_teams(admin, "support", "billing", "accounts")
    refunds = await make_rule(
        admin,
        "billing",
        {
            "all": [
                {"field": "sentiment", "op": "eq", "value": "negative"},
                {"field": "comment", "op": "contains_any", "value": REFUND_WORDS},
            ]
        },
        name="Refunds to billing",
        priority=10,
        case_priority="high",
        add_tags=["refund"],
    )
    enterprise = await make_rule(
        admin,
        "accounts",
        {"field": "attributes.plan", "op": "eq", "value": "enterprise"},
        name="Enterprise to the account team",
        priority=20,
        assignee={"from": "attributes.account_owner"},
    )
    return {"refunds": refunds, "enterprise": enterprise}


# -- teams --------------------------------------------------------------------------------


async def test_the_first_team_is_the_default_until_another_is_marked(
    admin: httpx.AsyncClient,
) -> None:
    first = await admin.post("/v1/teams", json=team_body("support"))
    assert first.status_code == 201
    assert first.json()["is_default"] is True
    second = await admin.post("/v1/teams", json=team_body("billing"))
    assert second.json()["is_default"] is False
    moved = await admin.patch("/v1/teams/billing", json={"is_default": True})
    assert moved.json()["is_default"] is True
    teams = {t["key"]: t["is_default"] for t in (await admin.get("/v1/teams")).json()["items"]}
    assert teams == {"support": False, "billing": True}
    third = await admin.post("/v1/teams", json=team_body("vip", is_default=True))
    assert third.json()["is_default"] is True
    teams = {t["key"]: t["is_default"] for t in (await admin.get("/v1/teams")).json()["items"]}
    assert teams == {"support": False, "billing": False, "vip": True}


async def test_the_default_cannot_be_unmarked_only_moved(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support")
    response = await admin.patch("/v1/teams/support", json={"is_default": False})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "is_default"


async def test_team_update_and_escalation(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support", "tier2")
    response = await admin.patch(
        "/v1/teams/support",
        json={"name": "Front line", "first_response_minutes": 30, "escalation_team": "tier2"},
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Front line"
    assert response.json()["escalation_team"] == "tier2"
    assert (await admin.get("/v1/teams/support")).json()["first_response_minutes"] == 30
    unknown = await admin.patch("/v1/teams/support", json={"escalation_team": "nobody"})
    assert unknown.status_code == 422
    itself = await admin.patch("/v1/teams/support", json={"escalation_team": "support"})
    assert itself.status_code == 422


async def test_bad_teams_are_refused(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support")
    duplicate = await admin.post("/v1/teams", json=team_body("support"))
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "team_exists"
    for body, field in [
        (team_body("Bad Key"), "key"),
        (team_body("x", first_response_minutes=0), "first_response_minutes"),
        (team_body("x", resolution_minutes="soon"), "resolution_minutes"),
        (team_body("x", escalation_team="ghost"), "escalation_team"),
    ]:
        response = await admin.post("/v1/teams", json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field
    assert (await admin.get("/v1/teams/ghost")).status_code == 404


async def test_a_team_in_use_cannot_be_deleted(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    in_use = await admin.delete("/v1/teams/billing")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "team_in_use"
    assert "rule" in in_use.json()["detail"]
    default = await admin.delete("/v1/teams/support")
    assert default.status_code == 409
    await make_teams(admin, "spare")
    assert (await admin.delete("/v1/teams/spare")).status_code == 204
    assert (await admin.get("/v1/teams/spare")).status_code == 404


async def test_cases_readers_may_list_teams_but_not_change_them(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    await make_teams(admin, "support")
    reader = await make_api_key(database, "cases:read")
    listed = await client.get("/v1/teams", headers=auth(reader))
    assert listed.status_code == 200
    assert [t["key"] for t in listed.json()["items"]] == ["support"]
    refused = await client.post("/v1/teams", json=team_body("x"), headers=auth(reader))
    assert refused.status_code == 403


# -- rules --------------------------------------------------------------------------------


async def test_rules_are_listed_in_evaluation_order(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support")
    always: dict[str, Any] = {"all": []}
    for name, priority in [("c", 30), ("a", 10), ("b", 30), ("d", 5)]:
        await make_rule(admin, "support", always, name=name, priority=priority)
    listed = (await admin.get("/v1/routing/rules")).json()["items"]
    assert [r["name"] for r in listed] == ["d", "a", "c", "b"]


async def test_rule_changes_need_if_match_and_keep_versions(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    rule = table["refunds"]
    url = f"/v1/routing/rules/{rule['id']}"
    read = await admin.get(url)
    assert read.headers["etag"] == '"1"'

    missing = await admin.patch(url, json={"priority": 5})
    assert missing.status_code == 428
    assert missing.json()["code"] == "if_match_required"

    changed = await admin.patch(url, json={"priority": 5}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["priority"] == 5
    assert changed.json()["version"] == 2

    stale = await admin.patch(url, json={"enabled": False}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == "version_mismatch"
    stale_delete = await admin.delete(url, headers={"If-Match": '"1"'})
    assert stale_delete.status_code == 412

    deleted = await admin.delete(url, headers={"If-Match": '"2"'})
    assert deleted.status_code == 204
    assert (await admin.get(url)).status_code == 404

    versions = (await admin.get(f"{url}/versions")).json()["items"]
    assert [(v["version"], v["change"]) for v in versions] == [
        (3, "deleted"),
        (2, "updated"),
        (1, "created"),
    ]
    assert versions[1]["rule"]["priority"] == 5
    assert versions[2]["rule"]["priority"] == 10
    assert {v["changed_by"] for v in versions} == {"test"}


async def test_a_rule_with_bad_conditions_points_at_the_node(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support")
    conditions = {
        "all": [
            {"field": "category", "op": "eq", "value": "detractor"},
            {"field": "channel", "op": "in", "value": ["app"]},
            {"any": [{"field": "comment", "op": "looks_like", "value": "x"}]},
        ]
    }
    response = await admin.post("/v1/routing/rules", json=rule_body("bad", "support", conditions))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "conditions.all[2].any[0].op",
            "message": "unknown operator `looks_like`",
            "type": "unknown_operator",
        }
    ]
    assert (await admin.get("/v1/routing/rules")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        (
            {"conditions": {"field": "mood", "op": "eq", "value": 1}},
            "conditions.field",
            "unknown_field",
        ),
        (
            {"conditions": {"field": "score", "op": "gt", "value": "7"}},
            "conditions.value",
            "value_type",
        ),
        (
            {"conditions": {"field": "comment", "op": "matches", "value": "(a)\\1"}},
            "conditions.value",
            "pattern_invalid",
        ),
        (
            {"conditions": {"field": "comment", "op": "matches", "value": "a" * 1001}},
            "conditions.value",
            "pattern_too_long",
        ),
        ({"priority": 1.5}, "priority", "int_type"),
        ({"team": "ghost"}, "team", "unknown_team"),
        ({"case_priority": "asap"}, "case_priority", "enum"),
        ({"assignee": {"from": "attributes"}}, "assignee.from", "unknown_field"),
    ],
)
async def test_bad_rules_are_a_422_with_a_pointer(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str, kind: str
) -> None:
    await make_teams(admin, "support")
    full = {**rule_body("r", "support", {"all": []}), **body}
    response = await admin.post("/v1/routing/rules", json=full)
    assert response.status_code == 422, response.text
    assert {"field": field, "type": kind} in [
        {"field": e["field"], "type": e["type"]} for e in response.json()["errors"]
    ]
    assert (await admin.get("/v1/routing/rules")).json()["items"] == []


async def test_depth_and_size_limits(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support")
    leaf = {"field": "score", "op": "lt", "value": 5}
    deep: dict[str, Any] = leaf
    for _ in range(8):
        deep = {"not": deep}
    too_deep = await admin.post("/v1/routing/rules", json=rule_body("deep", "support", deep))
    assert too_deep.status_code == 422
    assert too_deep.json()["errors"][0]["type"] == "too_deep"
    wide = {"any": [leaf] * 200}
    too_many = await admin.post("/v1/routing/rules", json=rule_body("wide", "support", wide))
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["type"] == "too_many_conditions"
    fits = {"any": [leaf] * 199}
    assert (
        await admin.post("/v1/routing/rules", json=rule_body("fits", "support", fits))
    ).status_code == 201


# -- evaluate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "team"),
    [
        ("I want a refund, the box arrived broken", "billing"),
        ("ＲＥＦＵＮＤ please", "billing"),
        ("我要退款，东西坏了", "billing"),
        ("我要退錢，東西壞了", "billing"),
        ("Quero o reembolso, chegou quebrado", "billing"),
        ("Quero a devolução do dinheiro", "billing"),
        ("The app crashes when I pay", "support"),
    ],
)
async def test_evaluate_routes_in_any_language(
    admin: httpx.AsyncClient, table: dict[str, Any], comment: str, team: str
) -> None:
    response = await admin.post("/v1/routing/evaluate", json=feedback_body(comment=comment))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["team"] == team
    assert result["routed"] is True
    if team == "billing":
        assert result["rule"]["id"] == table["refunds"]["id"]
        assert result["case_priority"] == "high"
        assert result["add_tags"] == ["refund"]
    else:
        assert result["rule"] is None


async def test_evaluate_shows_what_the_classifier_read(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    body = feedback_body(metric=None, score=None, comment="Great, another late delivery")
    response = await admin.post("/v1/routing/evaluate", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["sentiment"], result["routed"]) == ("negative", True)
    assert result["sentiment_cues"] == ["sarcasm:great", "criticism:late"]


async def test_evaluate_traces_each_rule_tried(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    body = feedback_body(
        comment="Your invoice page is slow",
        attributes={"plan": "Enterprise", "account_owner": "maria@shop"},
    )
    result = (await admin.post("/v1/routing/evaluate", json=body)).json()
    assert result["team"] == "accounts"
    assert result["assignee"] == "maria@shop"
    assert result["rule"] == {
        "id": table["enterprise"]["id"],
        "name": "Enterprise to the account team",
        "version": 1,
    }
    assert result["trace"] == [
        {
            "rule_id": table["refunds"]["id"],
            "name": "Refunds to billing",
            "matched": False,
            "failed_at": "conditions.all[1]",
        },
        {
            "rule_id": table["enterprise"]["id"],
            "name": "Enterprise to the account team",
            "matched": True,
            "failed_at": None,
        },
    ]


async def test_evaluate_stores_nothing_and_says_positive_feedback_is_not_routed(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    result = (
        await admin.post("/v1/routing/evaluate", json=feedback_body(score=10, comment="great"))
    ).json()
    assert result["routed"] is False
    assert result["category"] == "promoter"
    assert (await admin.get("/v1/feedback")).json()["items"] == []


async def test_evaluate_validates_like_ingest(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/v1/routing/evaluate", json=feedback_body(score=12))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "score"


async def test_the_spec_example_table(admin: httpx.AsyncClient) -> None:
    await make_teams(admin, "support", "priority")
    await make_rule(admin, "priority", SPEC_CONDITIONS, name="SPEC example")

    async def team_for(**overrides: Any) -> str:
        result = await admin.post("/v1/routing/evaluate", json=feedback_body(**overrides))
        team: str = result.json()["team"]
        return team

    assert await team_for(comment="退款") == "priority"
    assert (
        await team_for(comment="nothing special", attributes={"plan": "enterprise"}) == "priority"
    )
    assert await team_for(comment="refund", tags=["test"]) == "support"
    assert await team_for(comment="refund", channel="email") == "support"
    assert await team_for(comment="refund", score=7) == "support"


# -- routing at ingestion -------------------------------------------------------------------


async def test_negative_feedback_is_routed_on_arrival(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    refund = (await admin.post("/v1/feedback", json=feedback_body(comment="退款!"))).json()
    assert refund["routing"] == {
        "rule_id": table["refunds"]["id"],
        "rule_version": 1,
        "team": "billing",
    }
    other = (await admin.post("/v1/feedback", json=feedback_body(comment="slow app"))).json()
    assert other["routing"] == {"rule_id": None, "rule_version": None, "team": "support"}
    happy = (await admin.post("/v1/feedback", json=feedback_body(score=10))).json()
    assert happy["routing"] is None
    stored = (await admin.get(f"/v1/feedback/{refund['id']}")).json()
    assert stored["routing"] == refund["routing"]


async def test_a_batch_is_routed_item_by_item(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    items = [
        feedback_body(external_id="1", comment="reembolso"),
        feedback_body(external_id="2", attributes={"plan": "enterprise"}),
        feedback_body(external_id="3", score=9),
    ]
    results = (await admin.post("/v1/feedback/batch", json={"items": items})).json()["results"]
    teams = []
    for result in results:
        item = (await admin.get(f"/v1/feedback/{result['id']}")).json()
        teams.append(item["routing"] and item["routing"]["team"])
    assert teams == ["billing", "accounts", None]


async def test_a_rule_change_records_the_version_that_routed(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    rule = table["refunds"]
    await admin.patch(
        f"/v1/routing/rules/{rule['id']}",
        json={"case_priority": "urgent"},
        headers={"If-Match": '"1"'},
    )
    routed = (await admin.post("/v1/feedback", json=feedback_body(comment="refund"))).json()
    assert routed["routing"]["rule_version"] == 2


async def test_the_table_is_compiled_once_per_change(
    app: FastAPI, admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    for i in range(5):
        await admin.post("/v1/feedback", json=feedback_body(comment=f"refund {i}"))
    loads = app.state.routing.loads
    for i in range(5):
        await admin.post("/v1/feedback", json=feedback_body(comment=f"refund again {i}"))
    assert app.state.routing.loads == loads


async def test_another_replica_sees_a_change_after_its_check_interval(
    admin: httpx.AsyncClient,
    table: dict[str, Any],
    settings: Settings,
    database: BoundDatabase,
    admin_key: str,
) -> None:
    other = create_app(settings, database)
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://replica", headers=auth(admin_key)
    ) as replica:
        before = await replica.post("/v1/routing/evaluate", json=feedback_body(comment="refund"))
        assert before.json()["team"] == "billing"
        rule = table["refunds"]
        await admin.patch(
            f"/v1/routing/rules/{rule['id']}", json={"enabled": False}, headers={"If-Match": '"1"'}
        )
        # The replica's clock moves past its check interval (no sleeping in tests).
        other.state.routing.checked_at -= GENERATION_CHECK_SECONDS
        after = await replica.post("/v1/routing/evaluate", json=feedback_body(comment="refund"))
        assert after.json()["team"] == "support"


# -- backtest -----------------------------------------------------------------------------


async def test_backtest_compares_a_proposed_table_and_changes_nothing(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    comments = ["refund", "reembolso", "slow", "crash", "退款"]
    for i, comment in enumerate(comments):
        body = feedback_body(comment=comment, submitted_at=f"2026-10-0{i + 1}T12:00:00Z")
        assert (await admin.post("/v1/feedback", json=body)).status_code == 201
    await admin.post(
        "/v1/feedback", json=feedback_body(comment="refund", submitted_at="2026-09-01T00:00:00Z")
    )
    await admin.post(
        "/v1/feedback", json=feedback_body(score=10, submitted_at="2026-10-02T00:00:00Z")
    )
    proposed = [
        rule_body(
            "Crashes to accounts",
            "accounts",
            {"field": "comment", "op": "contains_any", "value": ["crash", "slow"]},
            priority=1,
        )
    ]
    response = await admin.post(
        "/v1/routing/backtest",
        json={"rules": proposed, "from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["negative_feedback"] == 5
    assert result["current"] == {"billing": 3, "support": 2}
    assert result["proposed"] == {"accounts": 2, "support": 3}
    assert result["moved"] == 5
    moved = {(e["from_team"], e["to_team"]) for e in result["examples"]}
    assert moved == {("billing", "support"), ("support", "accounts")}
    assert (await admin.get("/v1/routing/rules")).json()["items"][0]["name"] == "Refunds to billing"


async def _negative_items(admin: httpx.AsyncClient, days: int) -> None:
    for day in range(1, days + 1):
        body = feedback_body(comment="slow", submitted_at=f"2026-10-0{day}T12:00:00Z")
        assert (await admin.post("/v1/feedback", json=body)).status_code == 201


EVERYTHING_TO_ACCOUNTS = {
    "rules": [rule_body("All to accounts", "accounts", {"all": []}, priority=1)],
    "from": "2026-10-01T00:00:00Z",
    "to": "2026-11-01T00:00:00Z",
}


async def test_a_complete_backtest_says_so(admin: httpx.AsyncClient, table: dict[str, Any]) -> None:
    await _negative_items(admin, 2)
    result = (await admin.post("/v1/routing/backtest", json=EVERYTHING_TO_ACCOUNTS)).json()
    assert (result["complete"], result["stopped_by"], result["stopped_at"]) == (True, None, None)


async def test_a_backtest_stops_at_its_row_limit_and_says_where(
    app: FastAPI, admin: httpx.AsyncClient, table: dict[str, Any], settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"backtest_max_rows": 2})
    await _negative_items(admin, 3)
    response = await admin.post("/v1/routing/backtest", json=EVERYTHING_TO_ACCOUNTS)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["negative_feedback"] == 2
    assert result["proposed"] == {"accounts": 2}
    assert result["complete"] is False
    assert result["stopped_by"] == "max_rows"
    # Oldest first: the two it routed are the first two days; the third is where it stopped.
    assert result["stopped_at"] == "2026-10-03T12:00:00Z"


async def test_a_backtest_stops_at_its_time_limit_and_lets_others_run_meanwhile(
    admin: httpx.AsyncClient,
    database: BoundDatabase,
    table: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _negative_items(admin, 3)
    rule = {"name": "All", "team": "accounts", "case_priority": "normal", "conditions": {"all": []}}
    everything = build_table([rule], "support")
    window = {"start": datetime(2026, 10, 1, tzinfo=UTC), "end": datetime(2026, 11, 1, tzinfo=UTC)}
    async with database.raw() as conn:
        stopped = await backtest(
            negative_items(conn, **window),
            current=everything,
            proposed=everything,
            max_rows=100,
            max_seconds=0,
        )
    assert (stopped.negative_feedback, stopped.stopped_by) == (0, "max_seconds")
    assert stopped.stopped_at == datetime(2026, 10, 1, 12, tzinfo=UTC)

    # Routing gives the loop back (here after every item): another task runs in between.
    monkeypatch.setattr(evaluation, "YIELD_EVERY_SECONDS", 0.0)
    turns: list[int] = []

    async def beside() -> None:
        while len(turns) < 100:
            turns.append(len(turns))
            await asyncio.sleep(0)

    async with database.raw() as conn:
        other = asyncio.create_task(beside())
        done = await backtest(
            negative_items(conn, **window),
            current=everything,
            proposed=everything,
            max_rows=100,
            max_seconds=60,
        )
        seen_during = len(turns)
        await other
    assert (done.negative_feedback, done.stopped_by) == (3, None)
    assert seen_during > 0


async def test_backtest_refuses_bad_rules_with_pointers(
    admin: httpx.AsyncClient, table: dict[str, Any]
) -> None:
    proposed = [
        rule_body("ok", "billing", {"all": []}),
        rule_body("bad", "nowhere", {"field": "score", "op": "between", "value": [9, 1]}),
    ]
    response = await admin.post(
        "/v1/routing/backtest",
        json={"rules": proposed, "from": "2026-10-01T00:00:00Z", "to": "2026-09-01T00:00:00Z"},
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"rules[1].conditions.value", "rules[1].team", "to"}


async def test_routing_admin_needs_the_admin_scope(
    client: httpx.AsyncClient, database: BoundDatabase
) -> None:
    key = await make_api_key(database, "cases:write", "feedback:write")
    for method, url in [
        ("GET", "/v1/routing/rules"),
        ("POST", "/v1/routing/evaluate"),
        ("POST", "/v1/routing/backtest"),
    ]:
        response = await client.request(method, url, json={}, headers=auth(key))
        assert response.status_code == 403, url
