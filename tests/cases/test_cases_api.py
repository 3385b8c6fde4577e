"""Cases through HTTP: opening and joining, the lifecycle, If-Match, the timeline, the SLA
clock, queues, the customer view, bad input and scopes (SPEC §4)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.core.db import BoundDatabase
from tests.builders import (
    auth,
    feedback_body,
    make_api_key,
    open_case,
    read_case,
    send_feedback,
)
from tests.cases.helpers import (
    CASE_FIELDS,
    NO_NOTICE,
    NUMBER,
    at,
    change,
    changed,
    if_match,
    make_rule,
    make_team,
    mentions,
    move_to,
    person,
    queue,
    tagging_rules,
    timeline,
)

# -- opening ------------------------------------------------------------------------------


async def test_negative_feedback_opens_a_case_as_the_rule_decides(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "support")
    await make_team(admin, "billing", first_response_minutes=30, resolution_minutes=600)
    rule = await make_rule(
        admin,
        "billing",
        mentions("refund"),
        case_priority="high",
        add_tags=["refund", "money"],
        assignee="agent-7",
    )
    item = await send_feedback(admin, comment="I want a refund, the box arrived broken")
    assert item["case"]["team"] == "billing"
    assert item["case"]["status"] == "open"
    assert NUMBER.match(item["case"]["number"])

    case = await read_case(admin, item["case"]["id"])
    assert case["number"] == item["case"]["number"]
    assert case["status"] == "open"
    assert case["version"] == 1
    assert case["team"] == "billing"
    assert case["priority"] == "high"
    assert case["assignee"] == "agent-7"
    assert case["tags"] == ["refund", "money"]
    assert case["rule"] == {"id": rule["id"], "version": 1}
    created = at(case["created_at"])
    assert at(case["first_response_due_at"]) == created + timedelta(minutes=30)
    assert at(case["resolution_due_at"]) == created + timedelta(minutes=600)
    assert [f["id"] for f in case["feedback"]] == [item["id"]]
    assert case["feedback"][0]["kind"] == "opened"
    assert case["customer"]["external_id"] == "cus_42"
    assert case["customer"]["email"] == "ana@example.com"
    assert case["can_notify"] is True


async def test_a_rule_can_take_the_assignee_from_the_feedback(admin: httpx.AsyncClient) -> None:
    await make_team(admin, "accounts")
    await make_rule(
        admin,
        "accounts",
        {"field": "attributes.plan", "op": "eq", "value": "enterprise"},
        assignee={"from": "attributes.account_owner"},
    )
    case = await open_case(admin, attributes={"plan": "enterprise", "account_owner": "maria@shop"})
    assert case["team"] == "accounts"
    assert case["assignee"] == "maria@shop"


async def test_without_a_matching_rule_the_default_team_opens_a_normal_case(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "support", first_response_minutes=15, resolution_minutes=120)
    await make_team(admin, "billing")
    await make_rule(admin, "billing", mentions("refund"), case_priority="urgent")
    case = await open_case(admin, comment="The app crashes when I pay")
    assert case["team"] == "support"
    assert case["priority"] == "normal"
    assert case["assignee"] is None
    assert case["rule"] is None
    assert case["tags"] == []
    assert at(case["resolution_due_at"]) == at(case["created_at"]) + timedelta(minutes=120)


async def test_with_no_team_at_all_a_support_team_takes_the_case(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    assert case["team"] == "support"
    teams = (await admin.get("/v1/teams")).json()["items"]
    assert [(t["key"], t["is_default"]) for t in teams] == [("support", True)]
    minutes = teams[0]["resolution_minutes"]
    assert at(case["resolution_due_at"]) == at(case["created_at"]) + timedelta(minutes=minutes)


async def test_a_team_its_cases_name_cannot_be_deleted(admin: httpx.AsyncClient) -> None:
    await make_team(admin, "support")
    await make_team(admin, "billing")
    await make_rule(admin, "billing", mentions("refund"))
    case = await open_case(admin, comment="Where is my refund?")
    active = await admin.delete("/v1/teams/billing")
    assert active.status_code == 409
    assert (active.json()["code"], active.json()["detail"]) == (
        "team_in_use",
        "The team is in use: 1 routing rule(s) send feedback to it; 1 active case(s) belong to it.",
    )
    await move_to(admin, case, "closed")
    past = await admin.delete("/v1/teams/billing")
    assert past.json()["detail"].endswith("; 1 past case(s) belong to it.")


@pytest.mark.usefixtures("support")
async def test_a_case_shows_every_field_and_its_version_as_etag(
    admin: httpx.AsyncClient,
) -> None:
    item = await send_feedback(admin)
    response = await admin.get(f"/v1/cases/{item['case']['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    case = response.json()
    assert set(case) == CASE_FIELDS
    assert case["first_response_at"] is None
    assert case["resolved_at"] is None
    assert case["closed_at"] is None
    assert case["resolution"] is None
    assert (case["first_response_breached"], case["resolution_breached"]) == (False, False)
    assert case["breached"] is False
    assert case["created_at"] == case["updated_at"]
    assert set(case["customer"]) == {
        "external_id",
        "email",
        "phone",
        "name",
        "locale",
        "contact_consent",
        "verified",
    }


@pytest.mark.usefixtures("support")
async def test_case_numbers_are_short_and_unique(admin: httpx.AsyncClient) -> None:
    numbers = [(await open_case(admin, customer=person(f"cus_{i}")))["number"] for i in range(5)]
    assert all(NUMBER.match(n) for n in numbers)
    assert len(set(numbers)) == 5


@pytest.mark.parametrize(
    "overrides",
    [
        {"score": 6},
        {"metric": "csat", "score": 2},
        {"metric": "star", "score": 1},
        {"metric": "ces", "score": 3},
        {"metric": None, "score": None, "comment": "Terrible service, it never arrived"},
    ],
    ids=["nps-6", "csat-2", "star-1", "ces-3", "comment-only"],
)
@pytest.mark.usefixtures("support")
async def test_every_kind_of_negative_feedback_opens_a_case(
    admin: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    item = await send_feedback(admin, **overrides)
    assert item["sentiment"] == "negative"
    assert item["case"] is not None
    assert item["case"]["status"] == "open"


@pytest.mark.parametrize(
    "overrides",
    [
        {"score": 10, "comment": "Great, thank you"},
        {"score": 8, "comment": None},
        {"metric": "csat", "score": 3, "comment": None},
        {"metric": "ces", "score": 6, "comment": None},
        {"metric": None, "score": None, "comment": "Arrived on Tuesday"},
    ],
    ids=["promoter", "passive", "csat-neutral", "ces-easy", "neutral-comment"],
)
@pytest.mark.usefixtures("support")
async def test_positive_or_neutral_feedback_opens_no_case(
    admin: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    item = await send_feedback(admin, **overrides)
    assert item["sentiment"] != "negative"
    assert item["case"] is None
    assert (await admin.get(f"/v1/feedback/{item['id']}")).json()["case"] is None
    assert await queue(admin) == []


@pytest.mark.usefixtures("support")
async def test_a_feedback_item_shows_its_case(admin: httpx.AsyncClient) -> None:
    item = await send_feedback(admin)
    stored = (await admin.get(f"/v1/feedback/{item['id']}")).json()
    assert stored["case"] == item["case"]
    assert set(stored["case"]) == {"id", "number", "team", "status"}
    assert stored["case"]["team"] == "support"


# -- joining ------------------------------------------------------------------------------


@pytest.mark.usefixtures("support")
async def test_a_second_complaint_from_the_customer_joins_the_open_case(
    admin: httpx.AsyncClient,
) -> None:
    first = await send_feedback(admin, comment="The delivery was late")
    second = await send_feedback(admin, comment="And the box was broken", channel="email")
    assert second["case"]["id"] == first["case"]["id"]
    assert second["case"]["number"] == first["case"]["number"]

    case = await read_case(admin, first["case"]["id"])
    assert [(f["id"], f["kind"]) for f in case["feedback"]] == [
        (second["id"], "joined"),
        (first["id"], "opened"),
    ]
    assert case["version"] == 2
    assert at(case["updated_at"]) > at(case["created_at"])
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events] == ["created", "feedback_added"]
    assert events[1]["actor"] == "routing"
    assert events[1]["data"]["feedback_id"] == second["id"]
    assert await queue(admin) == [case["number"]]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (person("cus_7"), person("cus_7", email="other@example.com")),
        (person(email="Ana@Example.com"), person(email="ana@EXAMPLE.COM")),
        (person(phone="+351 912 345 678"), person(phone="+351-912-345-678")),
        (person(phone="+1 (415) 555.0100"), person(phone="+14155550100")),
    ],
    ids=["external-id", "email-any-case", "phone-spaces-dashes", "phone-brackets-dots"],
)
@pytest.mark.usefixtures("support")
async def test_the_customer_is_known_by_external_id_else_email_else_phone(
    admin: httpx.AsyncClient, first: dict[str, Any], second: dict[str, Any]
) -> None:
    opened = await send_feedback(admin, customer=first)
    joined = await send_feedback(admin, customer=second, comment="Still waiting for an answer")
    assert joined["case"]["id"] == opened["case"]["id"]


@pytest.mark.usefixtures("support")
async def test_the_external_id_outranks_a_shared_email(admin: httpx.AsyncClient) -> None:
    one = await send_feedback(admin, customer=person("cus_1", email="family@example.com"))
    two = await send_feedback(admin, customer=person("cus_2", email="family@example.com"))
    assert one["case"]["id"] != two["case"]["id"]


async def test_a_complaint_to_another_team_opens_a_separate_case(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "support")
    await make_team(admin, "billing")
    await make_rule(admin, "billing", mentions("refund"))
    late = await send_feedback(admin, comment="The delivery was late")
    refund = await send_feedback(admin, comment="I want a refund")
    assert (late["case"]["team"], refund["case"]["team"]) == ("support", "billing")
    assert late["case"]["id"] != refund["case"]["id"]
    again = await send_feedback(admin, comment="Still no refund")
    assert again["case"]["id"] == refund["case"]["id"]


@pytest.mark.parametrize("status", ["resolved", "closed"])
@pytest.mark.usefixtures("support")
async def test_after_the_case_is_resolved_a_new_complaint_opens_a_new_case(
    admin: httpx.AsyncClient, status: str
) -> None:
    case = await move_to(admin, await open_case(admin), status)
    item = await send_feedback(admin, comment="It broke again")
    assert item["case"]["id"] != case["id"]
    assert item["case"]["status"] == "open"
    assert (await read_case(admin, case["id"]))["feedback"] == case["feedback"]
    assert [f["id"] for f in (await read_case(admin, item["case"]["id"]))["feedback"]] == [
        item["id"]
    ]


@pytest.mark.usefixtures("support")
async def test_anonymous_feedback_opens_its_own_case_each_time(admin: httpx.AsyncClient) -> None:
    first = await open_case(admin, customer=None)
    second = await open_case(admin, customer=None)
    assert first["id"] != second["id"]
    for case in (first, second):
        assert case["can_notify"] is False
        assert case["customer"]["external_id"] is None
        assert case["customer"]["email"] is None
        assert case["customer"]["phone"] is None
        assert len(case["feedback"]) == 1


async def test_a_batch_of_complaints_from_one_customer_opens_one_case(
    admin: httpx.AsyncClient,
) -> None:
    items = [feedback_body(comment=f"Broken again, attempt {i}") for i in range(4)]
    response = await admin.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200, response.text
    ids = [r["id"] for r in response.json()["results"]]
    [number] = await queue(admin)
    case = (await admin.get("/v1/cases", params={"customer": "cus_42"})).json()["items"][0]
    assert case["number"] == number
    assert sorted(f["id"] for f in case["feedback"]) == sorted(ids)
    assert [f["id"] for f in case["feedback"] if f["kind"] == "opened"] == [ids[0]]
    assert case["version"] == 4


async def test_a_batch_joins_its_case_in_the_order_it_was_sent(
    admin: httpx.AsyncClient,
) -> None:
    items = [feedback_body(comment=f"Broken again, attempt {i}") for i in range(8)]
    results = (await admin.post("/v1/feedback/batch", json={"items": items})).json()["results"]
    ids = [r["id"] for r in results]
    item = (await admin.get(f"/v1/feedback/{ids[0]}")).json()
    case = await read_case(admin, item["case"]["id"])
    assert [f["id"] for f in case["feedback"]] == ids[::-1]
    assert case["feedback"][-1]["kind"] == "opened"
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events] == ["created"] + ["feedback_added"] * 7
    assert [e["data"]["feedback_id"] for e in events] == ids


async def test_a_join_merges_the_rules_tags_and_keeps_the_most_urgent_priority(
    admin: httpx.AsyncClient,
) -> None:
    await make_team(admin, "support")
    await tagging_rules(admin)
    opened = await open_case(admin, comment="The app is slow")
    assert (opened["priority"], opened["tags"]) == ("normal", ["speed"])

    raised = await open_case(admin, comment="I want a refund")
    assert raised["id"] == opened["id"]
    assert raised["priority"] == "high"
    assert raised["tags"] == ["speed", "refund", "money"]

    kept = await open_case(admin, comment="There is a typo and it is broken")
    assert kept["id"] == opened["id"]
    assert kept["priority"] == "high"
    assert kept["tags"] == ["speed", "refund", "money", "copy"]
    assert kept["rule"] == opened["rule"]
    assert kept["version"] == 3


# -- lifecycle ----------------------------------------------------------------------------


@pytest.mark.usefixtures("support")
async def test_taking_a_case_is_its_first_response(admin: httpx.AsyncClient) -> None:
    case = await open_case(admin)
    taken = await changed(admin, case, "", {"status": "in_progress"})
    assert taken["status"] == "in_progress"
    assert taken["first_response_at"] is not None
    assert at(taken["first_response_at"]) >= at(case["created_at"])
    assert taken["version"] == 2
    waiting = await changed(admin, taken, "", {"status": "waiting_on_customer"})
    back = await changed(admin, waiting, "", {"status": "in_progress"})
    assert back["first_response_at"] == taken["first_response_at"]


@pytest.mark.usefixtures("support")
async def test_a_case_goes_between_in_progress_and_waiting_on_the_customer(
    admin: httpx.AsyncClient,
) -> None:
    case = await move_to(admin, await open_case(admin), "in_progress")
    for status in ("waiting_on_customer", "in_progress", "waiting_on_customer"):
        case = await changed(admin, case, "", {"status": status})
        assert case["status"] == status
    assert case["version"] == 5
    moves = [
        (e["data"]["from"], e["data"]["to"])
        for e in await timeline(admin, case["id"])
        if e["type"] == "status_changed"
    ]
    assert moves == [
        ("open", "in_progress"),
        ("in_progress", "waiting_on_customer"),
        ("waiting_on_customer", "in_progress"),
        ("in_progress", "waiting_on_customer"),
    ]


@pytest.mark.parametrize("status", ["open", "in_progress", "waiting_on_customer"])
@pytest.mark.usefixtures("support")
async def test_a_case_resolves_from_every_active_status(
    admin: httpx.AsyncClient, status: str
) -> None:
    case = await move_to(admin, await open_case(admin), status)
    resolved = await changed(
        admin,
        case,
        "resolve",
        {
            "code": "refunded",
            "summary": "Refund issued in the back office",
            "customer_message": "We refunded your order.",
        },
    )
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert resolved["first_response_at"] is not None
    assert resolved["resolution"] == {
        "code": "refunded",
        "summary": "Refund issued in the back office",
        "customer_message": "We refunded your order.",
        "notify_customer": True,
    }
    assert resolved["version"] == case["version"] + 1


@pytest.mark.usefixtures("support")
async def test_a_resolved_case_closes_and_a_closed_case_reopens_with_a_reason(
    admin: httpx.AsyncClient,
) -> None:
    resolved = await move_to(admin, await open_case(admin), "resolved")
    closed = await changed(admin, resolved, "close")
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert closed["resolved_at"] == resolved["resolved_at"]
    assert closed["resolution"] == resolved["resolution"]

    reopened = await changed(admin, closed, "reopen", {"reason": "The customer wrote back"})
    assert reopened["status"] == "open"
    assert (reopened["resolved_at"], reopened["closed_at"], reopened["resolution"]) == (
        None,
        None,
        None,
    )
    assert reopened["version"] == closed["version"] + 1
    assert await queue(admin, status="open") == [reopened["number"]]


@pytest.mark.usefixtures("support")
async def test_a_reopened_case_resolves_again_and_a_patch_can_close_it(
    admin: httpx.AsyncClient,
) -> None:
    resolved = await move_to(admin, await open_case(admin), "resolved")
    reopened = await changed(admin, resolved, "reopen", {"reason": "Not actually fixed"})
    assert reopened["status"] == "open"
    assert reopened["resolution"] is None
    resolved_again = await changed(admin, reopened, "resolve", NO_NOTICE)
    closed = await changed(admin, resolved_again, "", {"status": "closed"})
    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None


@pytest.mark.usefixtures("support")
async def test_a_case_cannot_reopen_while_the_customer_has_another_active_one(
    admin: httpx.AsyncClient,
) -> None:
    old = await move_to(admin, await open_case(admin), "resolved")
    new = await open_case(admin, comment="Broken again")
    response = await change(admin, old, "reopen", {"reason": "The customer wrote back"})
    assert response.status_code == 409
    assert response.json()["code"] == "case_active_elsewhere"
    assert new["number"] in response.json()["detail"]
    await move_to(admin, new, "resolved")
    assert (await changed(admin, old, "reopen", {"reason": "Back to the first one"}))[
        "status"
    ] == "open"


@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        ("open", "", {"status": "waiting_on_customer"}),
        ("open", "", {"status": "closed"}),
        ("open", "close", None),
        ("open", "reopen", {"reason": "again"}),
        ("in_progress", "close", None),
        ("in_progress", "reopen", {"reason": "again"}),
        ("waiting_on_customer", "", {"status": "closed"}),
        ("resolved", "", {"status": "in_progress"}),
        ("resolved", "", {"status": "waiting_on_customer"}),
        ("resolved", "resolve", NO_NOTICE),
        ("closed", "", {"status": "in_progress"}),
        ("closed", "resolve", NO_NOTICE),
        ("closed", "close", None),
    ],
    ids=lambda value: value if isinstance(value, str) and value else None,
)
@pytest.mark.usefixtures("support")
async def test_a_move_that_is_not_allowed_is_a_409(
    admin: httpx.AsyncClient, status: str, action: str, body: dict[str, Any] | None
) -> None:
    case = await move_to(admin, await open_case(admin), status)
    response = await change(admin, case, action, body)
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "case_invalid_transition"
    after = await read_case(admin, case["id"])
    assert (after["status"], after["version"]) == (status, case["version"])


@pytest.mark.parametrize(("status", "route"), [("resolved", "resolve"), ("open", "reopen")])
@pytest.mark.usefixtures("support")
async def test_patching_to_resolved_or_open_points_at_their_own_routes(
    admin: httpx.AsyncClient, status: str, route: str
) -> None:
    case = await move_to(admin, await open_case(admin), "in_progress")
    response = await change(admin, case, "", {"status": status})
    assert response.status_code == 422
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["status"]
    assert route in problem["detail"]
    assert (await read_case(admin, case["id"]))["status"] == "in_progress"


@pytest.mark.usefixtures("support")
async def test_assignee_priority_and_tags_change_with_events(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    updated = await changed(
        admin,
        case,
        "",
        {"assignee": "agent-ana", "priority": "urgent", "tags": ["vip", "late", "vip"]},
    )
    assert updated["assignee"] == "agent-ana"
    assert updated["priority"] == "urgent"
    assert updated["tags"] == ["vip", "late"]
    assert updated["status"] == "open"
    assert updated["version"] == 2
    assert await read_case(admin, case["id"]) == updated

    unassigned = await changed(admin, updated, "", {"assignee": None})
    assert unassigned["assignee"] is None

    events = {e["type"]: e for e in await timeline(admin, case["id"])}
    assert events["priority_changed"]["data"] == {"from": "normal", "to": "urgent"}
    assert events["tags_changed"]["data"] == {"from": [], "to": ["vip", "late"]}
    assigned = [e["data"] for e in await timeline(admin, case["id"]) if e["type"] == "assigned"]
    assert assigned == [{"from": None, "to": "agent-ana"}, {"from": "agent-ana", "to": None}]
    assert await queue(admin, priority="urgent") == [case["number"]]


# -- If-Match -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("", {"status": "in_progress"}),
        ("resolve", NO_NOTICE),
        ("reopen", {"reason": "again"}),
        ("close", None),
    ],
    ids=["patch", "resolve", "reopen", "close"],
)
@pytest.mark.usefixtures("support")
async def test_every_change_needs_a_current_if_match(
    admin: httpx.AsyncClient, action: str, body: dict[str, Any] | None
) -> None:
    case = await open_case(admin)
    url = f"/v1/cases/{case['id']}" + (f"/{action}" if action else "")
    method = "PATCH" if not action else "POST"

    missing = await admin.request(method, url, json=body)
    assert missing.status_code == 428
    assert missing.json()["code"] == "if_match_required"
    stale = await admin.request(method, url, json=body, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == "version_mismatch"
    assert (await read_case(admin, case["id"]))["version"] == 1


@pytest.mark.usefixtures("support")
async def test_a_change_answers_with_the_new_etag_and_the_old_one_goes_stale(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    first = await change(admin, case, "", {"status": "in_progress"})
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    assert first.json()["version"] == 2
    second_agent = await change(admin, case, "", {"assignee": "agent-bo"})
    assert second_agent.status_code == 412
    assert (await read_case(admin, case["id"]))["assignee"] is None
    resolved = await admin.post(
        f"/v1/cases/{case['id']}/resolve", json=NO_NOTICE, headers={"If-Match": 'W/"2"'}
    )
    assert resolved.status_code == 200
    assert resolved.headers["etag"] == '"3"'
    closed = await admin.post(f"/v1/cases/{case['id']}/close", headers={"If-Match": "*"})
    assert closed.status_code == 200
    assert closed.headers["etag"] == '"4"'


@pytest.mark.usefixtures("support")
async def test_a_note_needs_no_if_match_but_a_stale_one_is_412(
    admin: httpx.AsyncClient,
) -> None:
    case = await open_case(admin)
    url = f"/v1/cases/{case['id']}/notes"
    plain = await admin.post(url, json={"body": "Called the customer, no answer"})
    assert plain.status_code == 201, plain.text
    assert plain.json()["type"] == "note_added"
    assert plain.json()["data"] == {"body": "Called the customer, no answer"}
    current = await admin.post(url, json={"body": "Left a voicemail"}, headers=if_match(case))
    assert current.status_code == 201
    stale = await admin.post(url, json={"body": "Too late"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412
    assert stale.json()["code"] == "version_mismatch"
    notes = [
        e["data"]["body"] for e in await timeline(admin, case["id"]) if e["type"] == "note_added"
    ]
    assert notes == ["Called the customer, no answer", "Left a voicemail"]


# -- events -------------------------------------------------------------------------------


@pytest.mark.usefixtures("support")
async def test_the_timeline_tells_every_change_oldest_first_and_who_made_it(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    item = await send_feedback(admin)
    agent = auth(await make_api_key(database, "cases:read", "cases:write", name="agent-ana"))
    url = f"/v1/cases/{item['case']['id']}"

    async def act(method: str, path: str, version: int, body: Any = None) -> None:
        headers = {**agent, "If-Match": f'"{version}"'}
        response = await client.request(method, url + path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text

    await act("PATCH", "", 1, {"status": "in_progress"})
    await act("POST", "/notes", 2, {"body": "Asked the courier"})
    await act("PATCH", "", 2, {"status": "waiting_on_customer"})
    await act("PATCH", "", 3, {"status": "in_progress"})
    await act("POST", "/resolve", 4, {"code": "replaced", "notify_customer": False})
    await act("POST", "/close", 5)
    await act("POST", "/reopen", 6, {"reason": "The replacement broke too"})

    response = await client.get(url + "/events", headers=agent)
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    events = response.json()["items"]
    assert [(e["type"], e["actor"]) for e in events] == [
        ("created", "routing"),
        ("status_changed", "agent-ana"),
        ("note_added", "agent-ana"),
        ("status_changed", "agent-ana"),
        ("status_changed", "agent-ana"),
        ("status_changed", "agent-ana"),
        ("resolved", "agent-ana"),
        ("notification_skipped", "agent-ana"),
        ("status_changed", "agent-ana"),
        ("closed", "agent-ana"),
        ("status_changed", "agent-ana"),
        ("reopened", "agent-ana"),
    ]
    assert all(set(e) == {"id", "type", "actor", "at", "data"} for e in events)
    assert [at(e["at"]) for e in events] == sorted(at(e["at"]) for e in events)
    assert events[0]["data"]["feedback_id"] == item["id"]
    assert events[0]["data"]["team"] == "support"
    assert events[1]["data"] == {"from": "open", "to": "in_progress"}
    assert events[2]["data"] == {"body": "Asked the courier"}
    assert events[6]["data"] == {"code": "replaced", "notify_customer": False}
    assert events[7]["data"]["reason"] == "agent_chose_not_to_notify"
    assert events[8]["data"] == {"from": "resolved", "to": "closed"}
    assert events[10]["data"] == {"from": "closed", "to": "open"}
    assert events[11]["data"] == {"reason": "The replacement broke too"}


@pytest.mark.usefixtures("support")
async def test_the_timeline_pages_with_a_cursor(admin: httpx.AsyncClient) -> None:
    case = await open_case(admin)
    for i in range(6):
        note = await admin.post(f"/v1/cases/{case['id']}/notes", json={"body": f"note {i}"})
        assert note.status_code == 201
    everything = await timeline(admin, case["id"])
    assert len(everything) == 7

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await admin.get(f"/v1/cases/{case['id']}/events", params=params)).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == everything
    bad = await admin.get(f"/v1/cases/{case['id']}/events", params={"cursor": "x"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"


# -- the SLA clock --------------------------------------------------------------------------


@pytest.mark.usefixtures("support")
async def test_waiting_on_the_customer_stops_the_sla_clock(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    waiting = await move_to(admin, await open_case(admin), "waiting_on_customer")
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE feedback_case SET waiting_since = waiting_since - interval '2 hours' "
            "WHERE id = $1",
            uuid.UUID(waiting["id"]),
        )
    back = await changed(admin, waiting, "", {"status": "in_progress"})
    for due in ("resolution_due_at", "first_response_due_at"):
        pushed = at(back[due]) - at(waiting[due])
        assert timedelta(hours=2) <= pushed < timedelta(hours=2, minutes=1), due


@pytest.mark.usefixtures("support")
async def test_resolving_straight_from_waiting_also_stops_the_clock(
    admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    waiting = await move_to(admin, await open_case(admin), "waiting_on_customer")
    async with database.raw() as conn:
        await conn.execute(
            "UPDATE feedback_case SET waiting_since = waiting_since - interval '3 hours' "
            "WHERE id = $1",
            uuid.UUID(waiting["id"]),
        )
    resolved = await changed(admin, waiting, "resolve", NO_NOTICE)
    pushed = at(resolved["resolution_due_at"]) - at(waiting["resolution_due_at"])
    assert timedelta(hours=3) <= pushed < timedelta(hours=3, minutes=1)
