"""Which events become which webhook messages (the outbox), the customer notification, the
follow-up, an endpoint's messages, and scopes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from app.core.db import BoundDatabase
from tests.builders import (
    acted,
    auth,
    change_case,
    feedback_body,
    make_api_key,
    open_case,
    read_case,
    send_feedback,
)
from tests.notifications.helpers import (
    ENDPOINTS,
    HOOK,
    NO_NOTICE,
    NOTICE,
    UNKNOWN_ID,
    Outbox,
    assert_block_shows,
    at,
    delivered,
    refused_fields,
    register,
    timeline,
)

# -- the outbox: which events become which messages ---------------------------------------------


async def test_negative_feedback_queues_one_message_per_event_and_subscribed_endpoint(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    received = await register(admin, "feedback.received")
    opened = await register(admin, "case.opened")
    everything = await register(admin, "*")
    resolved = await register(admin, "case.resolved")

    item = await send_feedback(admin)

    messages = await outbox.all()
    assert delivered(
        messages, received=received, opened=opened, everything=everything, resolved=resolved
    ) == [
        ("everything", "case.opened"),
        ("everything", "feedback.received"),
        ("opened", "case.opened"),
        ("received", "feedback.received"),
    ]
    assert {m.status for m in messages} == {"pending"}
    for message in messages:
        assert message.payload["type"] == message.event_type
        assert set(message.payload) == {"type", "timestamp", "data"}
        if message.event_type == "feedback.received":
            assert message.case_id is None
        else:
            assert message.case_id == item["case"]["id"]


async def test_feedback_received_carries_the_feedback_as_stored_without_its_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "feedback.received")
    item = await send_feedback(admin, external_id="resp-1")
    [message] = await outbox.all()
    assert message.data == {k: v for k, v in item.items() if k != "case"}
    assert message.data["routing"]["team"] == item["case"]["team"]
    assert "case" not in message.data
    assert at(message.payload["timestamp"]) == at(item["received_at"])
    stored = (await admin.get(f"/v1/feedback/{item['id']}")).json()
    assert message.data == {k: v for k, v in stored.items() if k != "case"}


async def test_positive_feedback_queues_feedback_received_only(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    everything = await register(admin, "*")
    item = await send_feedback(admin, score=10, comment="Great service")
    assert item["case"] is None
    messages = await outbox.all()
    assert delivered(messages, everything=everything) == [("everything", "feedback.received")]
    assert messages[0].data["routing"] is None


async def test_case_opened_carries_the_case_block(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.opened")
    item = await send_feedback(
        admin,
        source="ios-app",
        external_id="resp-9",
        customer={
            "external_id": "cus_9",
            "email": "Ana@Example.com",
            "phone": "+55 (11) 91234-5678",
            "name": "Ana",
            "locale": "pt-BR",
        },
    )
    [message] = await outbox.all()
    case = await read_case(admin, item["case"]["id"])
    assert_block_shows(message, case)
    block = message.data["case"]
    assert block["status"] == "open"
    assert block["customer"] == {
        "external_id": "cus_9",
        "email": "ana@example.com",
        "phone": "+5511912345678",
        "name": "Ana",
        "locale": "pt-BR",
        "contact_consent": True,
        "verified": True,
    }
    assert block["feedback"] == [{"id": item["id"], "source": "ios-app", "external_id": "resp-9"}]
    assert at(message.payload["timestamp"]) == at(case["created_at"])


async def test_each_message_says_the_case_version_it_follows(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    """Messages are sent in parallel and retried on their own, so a receiver orders a case's
    messages by the version in their block; those of one change share it."""
    await register(admin, "*")
    case = await open_case(admin)
    assigned = await acted(admin, case, "", {"assignee": "ana", "status": "in_progress"})
    await acted(admin, assigned, "resolve", NO_NOTICE)
    messages = [m for m in await outbox.all() if m.event_type.startswith("case.")]
    versions = [(m.event_type, m.data["case"]["version"]) for m in messages]
    assert ("case.opened", 1) in versions
    assert ("case.assigned", 2) in versions
    assert ("case.status_changed", 3) in versions  # resolved (without a notice: no case.resolved)
    assert sorted(v for _, v in versions) == [v for _, v in versions]


async def test_a_sources_filter_limits_the_messages_to_those_sources(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    ios = await register(admin, "feedback.received", "case.opened", sources=["ios-app"])
    anywhere = await register(admin, "feedback.received", "case.opened")

    await send_feedback(admin, source="checkout-web", customer={"external_id": "cus_1"})
    assert delivered(await outbox.new(), ios=ios, anywhere=anywhere) == [
        ("anywhere", "case.opened"),
        ("anywhere", "feedback.received"),
    ]
    await send_feedback(admin, source="ios-app", customer={"external_id": "cus_2"})
    assert delivered(await outbox.new(), ios=ios, anywhere=anywhere) == [
        ("anywhere", "case.opened"),
        ("anywhere", "feedback.received"),
        ("ios", "case.opened"),
        ("ios", "feedback.received"),
    ]


async def test_case_events_reach_an_endpoint_filtered_to_any_of_the_cases_sources(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    ios = await register(admin, "case.status_changed", sources=["ios-app"])
    web = await register(admin, "case.status_changed", sources=["checkout-web"])
    other = await register(admin, "case.status_changed", sources=["call-center"])
    item = await send_feedback(admin, source="checkout-web")
    await send_feedback(admin, source="ios-app")  # the same customer: it joins the case
    case = await read_case(admin, item["case"]["id"])
    assert len(case["feedback"]) == 2

    await acted(admin, case, "", {"status": "in_progress"})
    assert delivered(await outbox.all(), ios=ios, web=web, other=other) == [
        ("ios", "case.status_changed"),
        ("web", "case.status_changed"),
    ]


async def test_a_disabled_endpoint_gets_nothing_until_enabled(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "*")
    await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": False})
    await send_feedback(admin, customer={"external_id": "cus_1"})
    assert await outbox.all() == []

    await admin.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": True})
    await send_feedback(admin, customer={"external_id": "cus_2"})
    assert delivered(await outbox.all(), endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
    ]


async def test_joining_an_open_case_writes_no_second_case_opened(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "feedback.received", "case.opened")
    first = await send_feedback(admin, comment="Late again")
    second = await send_feedback(admin, comment="Still late")
    assert second["case"]["id"] == first["case"]["id"]
    messages = await outbox.all()
    assert delivered(messages, endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
        ("endpoint", "feedback.received"),
    ]
    [opened] = [m for m in messages if m.event_type == "case.opened"]
    assert opened.data["case"]["feedback"] == [
        {"id": first["id"], "source": "checkout-web", "external_id": None}
    ]


async def test_a_replayed_item_writes_no_second_message(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "*")
    body = feedback_body(external_id="resp-5")
    assert (await admin.post("/v1/feedback", json=body)).status_code == 201
    await outbox.new()
    replay = await admin.post("/v1/feedback", json=body)
    assert replay.status_code == 200, replay.text
    assert await outbox.new() == []


async def test_a_batch_queues_the_same_messages_as_single_items(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "*")
    response = await admin.post(
        "/v1/feedback/batch",
        json={
            "items": [
                feedback_body(external_id="b-1", customer={"external_id": "cus_1"}),
                feedback_body(external_id="b-2", score=10, comment="Great"),
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["created", "created"]
    messages = await outbox.all()
    assert delivered(messages, endpoint=endpoint) == [
        ("endpoint", "case.opened"),
        ("endpoint", "feedback.received"),
        ("endpoint", "feedback.received"),
    ]
    received = sorted(
        m.data["external_id"] for m in messages if m.event_type == "feedback.received"
    )
    assert received == ["b-1", "b-2"]


async def test_a_batch_writes_feedback_received_only_for_the_sources_an_endpoint_takes(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    """The batch builds its feedback.received bodies only when an endpoint takes one of its
    sources; then each message carries its own item, for its own source only."""
    ios = await register(admin, "feedback.received", sources=["ios-app"])
    items = [
        feedback_body(source="checkout-web", external_id="w-1", score=10, comment="Great"),
        feedback_body(source="ios-app", external_id="i-1", score=9, comment="Fast"),
    ]
    response = await admin.post("/v1/feedback/batch", json={"items": items[:1]})
    assert response.status_code == 200, response.text
    assert await outbox.new() == []
    response = await admin.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 200, response.text
    messages = await outbox.new()
    assert delivered(messages, ios=ios) == [("ios", "feedback.received")]
    assert messages[0].data["external_id"] == "i-1"
    assert messages[0].data["comment"] == "Fast"


async def test_taking_a_case_writes_case_status_changed(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "case.status_changed")
    case = await open_case(admin)
    case = await acted(admin, case, "", {"status": "in_progress"})
    [message] = await outbox.all()
    assert message.endpoint_id == endpoint["id"]
    assert message.case_id == case["id"]
    assert message.data["from"] == "open"
    assert message.data["to"] == "in_progress"
    assert_block_shows(message, case)
    assert at(message.payload["timestamp"]) == at(case["updated_at"])


async def test_assigning_a_case_writes_case_assigned(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "case.assigned")
    case = await open_case(admin)
    case = await acted(admin, case, "", {"assignee": "ana"})
    [message] = await outbox.new()
    assert message.endpoint_id == endpoint["id"]
    assert (message.data["from"], message.data["to"]) == (None, "ana")
    assert_block_shows(message, case)

    case = await acted(admin, case, "", {"assignee": None})
    [message] = await outbox.new()
    assert (message.data["from"], message.data["to"]) == ("ana", None)
    await acted(admin, case, "", {"priority": "urgent", "tags": ["vip"]})
    assert await outbox.new() == []


async def test_a_case_lifecycle_writes_its_events_for_an_endpoint_taking_all(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    everything = await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()

    steps: list[tuple[str, Any, list[str]]] = [
        ("", {"status": "in_progress"}, ["case.status_changed"]),
        ("", {"status": "waiting_on_customer"}, ["case.status_changed"]),
        ("resolve", NOTICE, ["case.resolved", "case.status_changed"]),
        ("close", None, ["case.closed", "case.status_changed"]),
        ("reopen", {"reason": "It broke again"}, ["case.reopened", "case.status_changed"]),
        ("resolve", NO_NOTICE, ["case.status_changed"]),
        ("", {"status": "closed"}, ["case.closed", "case.status_changed"]),
    ]
    for action, body, types in steps:
        case = await acted(admin, case, action, body)
        messages = await outbox.new()
        assert delivered(messages, everything=everything) == [("everything", t) for t in types], (
            action,
            body,
        )
        for message in messages:
            assert_block_shows(message, case)


async def test_closing_and_reopening_write_case_closed_and_case_reopened(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.closed", "case.reopened")
    case = await open_case(admin)
    case = await acted(admin, case, "resolve", NO_NOTICE)
    assert await outbox.new() == []
    case = await acted(admin, case, "close")
    [closed] = await outbox.new()
    assert closed.event_type == "case.closed"
    assert set(closed.data) == {"case"}
    assert closed.data["case"]["status"] == "closed"

    case = await acted(admin, case, "reopen", {"reason": "The refund never came"})
    [reopened] = await outbox.new()
    assert reopened.event_type == "case.reopened"
    assert reopened.data["reason"] == "The refund never came"
    assert_block_shows(reopened, case)


async def test_case_resolved_is_written_only_when_the_customer_is_told(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    quiet = await open_case(admin, customer={"external_id": "cus_1"})
    await acted(admin, quiet, "resolve", NO_NOTICE)
    assert await outbox.new() == []

    told = await open_case(admin, customer={"external_id": "cus_2", "locale": "pt-BR"})
    told = await acted(admin, told, "resolve", {**NOTICE, "summary": "internal only"})
    [message] = await outbox.new()
    assert message.event_type == "case.resolved"
    assert message.case_id == told["id"]
    assert set(message.data) == {"case", "resolution", "followup"}
    assert message.data["resolution"] == NOTICE
    assert "internal only" not in json.dumps(message.payload)
    token = message.data["followup"]["token"]
    assert message.data["followup"]["url"] == f"https://feedback.example.com/f/{token}"
    assert_block_shows(message, told)
    assert message.data["case"]["status"] == "resolved"


async def test_a_stale_if_match_writes_no_message(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()
    await acted(admin, case, "", {"assignee": "ana"})
    await outbox.new()

    stale = await change_case(admin, case, "resolve", NOTICE)
    assert stale.status_code == 412, stale.text
    assert await outbox.new() == []
    assert (await read_case(admin, case["id"]))["status"] == "open"


async def test_a_move_that_is_not_allowed_writes_no_message(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "*")
    case = await open_case(admin)
    await outbox.new()
    refused = await change_case(admin, case, "", {"assignee": "ana", "status": "closed"})
    assert refused.status_code == 409, refused.text
    assert await outbox.new() == []
    assert (await read_case(admin, case["id"]))["assignee"] is None


# -- the customer notification ------------------------------------------------------------------


async def skipped_reason(client: httpx.AsyncClient, case_id: str) -> str:
    events = await timeline(client, case_id)
    assert events[-1]["type"] == "notification_skipped", events
    assert events[-1]["data"]["event"] == "case.resolved"
    reason: str = events[-1]["data"]["reason"]
    return reason


@pytest.mark.parametrize(
    ("customer", "resolution", "reason"),
    [
        (
            {"external_id": "cus_7", "email": "bo@example.com", "contact_consent": False},
            NOTICE,
            "no_contact_consent",
        ),
        (None, NOTICE, "customer_unreachable"),
        ({"name": "Bo", "locale": "en-GB"}, NOTICE, "customer_unreachable"),
        (
            {"external_id": "cus_7", "email": "bo@example.com"},
            NO_NOTICE,
            "agent_chose_not_to_notify",
        ),
    ],
    ids=["no-consent", "anonymous", "no-contact-details", "agent-chose"],
)
async def test_case_resolved_is_not_sent_and_the_case_says_why(
    admin: httpx.AsyncClient,
    outbox: Outbox,
    customer: dict[str, Any] | None,
    resolution: dict[str, Any],
    reason: str,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin, customer=customer)
    resolved = await acted(admin, case, "resolve", resolution)
    assert resolved["status"] == "resolved"
    assert await outbox.all() == []
    assert await skipped_reason(admin, case["id"]) == reason


async def test_without_a_subscribed_endpoint_the_case_says_no_endpoint(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.opened", "case.closed")
    disabled = await register(admin, "case.resolved")
    await admin.patch(f"{ENDPOINTS}/{disabled['id']}", json={"enabled": False})
    await register(admin, "case.resolved", sources=["ios-app"])
    case = await open_case(admin)
    await outbox.new()
    await acted(admin, case, "resolve", NOTICE)
    assert await outbox.new() == []
    assert await skipped_reason(admin, case["id"]) == "no_webhook_endpoint"


async def test_a_queued_notification_is_on_the_timeline_with_its_endpoint_count(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    await register(admin, "*")
    case = await open_case(admin)
    await acted(admin, case, "resolve", NOTICE)
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events[-3:]] == ["status_changed", "resolved", "notification_queued"]
    assert events[-1]["data"] == {"event": "case.resolved", "endpoints": 2}
    assert events[-1]["actor"] == "test"
    resolved = [m for m in await outbox.all() if m.event_type == "case.resolved"]
    assert len(resolved) == 2
    # One token for the resolution, whichever endpoint carries it.
    assert len({m.data["followup"]["token"] for m in resolved}) == 1


async def test_the_customer_view_lists_each_notification_and_its_outcome(
    admin: httpx.AsyncClient,
) -> None:
    endpoint = await register(admin, "case.resolved")
    customer = {"external_id": "cus_5", "email": "cy@example.com"}
    skipped = await open_case(admin, customer=customer)
    await acted(admin, skipped, "resolve", NO_NOTICE)
    queued = await open_case(admin, customer=customer)  # the first is resolved: a new case
    assert queued["id"] != skipped["id"]
    await acted(admin, queued, "resolve", NOTICE)

    view = (await admin.get("/v1/customers/cus_5")).json()
    assert [(n["case_id"], n["outcome"], n["reason"]) for n in view["notifications"]] == [
        (queued["id"], "pending", None),
        (skipped["id"], "not_sent", "agent_chose_not_to_notify"),
    ]
    pending, not_sent = view["notifications"]
    assert pending["case_number"] == queued["number"]
    assert pending["endpoint_id"] == endpoint["id"]
    assert pending["message_id"] is not None
    assert pending["attempts"] == 0
    assert (not_sent["message_id"], not_sent["endpoint_id"]) == (None, None)
    by_email = (await admin.get("/v1/customers/cy@example.com")).json()
    assert by_email["notifications"] == view["notifications"]


async def test_the_customer_view_says_why_a_customer_without_consent_was_not_told(
    admin: httpx.AsyncClient,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin, customer={"external_id": "cus_6", "contact_consent": False})
    await acted(admin, case, "resolve", NOTICE)
    view = (await admin.get("/v1/customers/cus_6")).json()
    assert [(n["outcome"], n["reason"]) for n in view["notifications"]] == [
        ("not_sent", "no_contact_consent")
    ]


# -- the follow-up ------------------------------------------------------------------------------


async def resolved_with_token(
    client: httpx.AsyncClient, outbox: Outbox, **overrides: Any
) -> tuple[dict[str, Any], str]:
    """A case resolved with a notice to the customer, and the follow-up token its case.resolved
    message carries (an endpoint taking case.resolved must exist)."""
    case = await open_case(client, **overrides)
    case = await acted(client, case, "resolve", NOTICE)
    [message] = [
        m for m in await outbox.all() if m.event_type == "case.resolved" and m.case_id == case["id"]
    ]
    token: str = message.data["followup"]["token"]
    return case, token


def answer(case: dict[str, Any], token: str, **overrides: Any) -> dict[str, Any]:
    """The customer's answer to the follow-up question: CSAT 5 unless told otherwise."""
    body = {
        "metric": "csat",
        "score": 5,
        "comment": "Thank you, all sorted",
        "in_reply_to": {"case_id": case["id"], "token": token},
    }
    return feedback_body(**{**body, **overrides})


async def cases_of(client: httpx.AsyncClient, customer: str) -> list[str]:
    response = await client.get("/v1/cases", params={"customer": customer})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def test_a_followup_answer_joins_its_case_and_opens_none(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    counted = {"channel": "web", "category": "positive"}
    before = REGISTRY.get_sample_value("closeloop_feedback_stored_total", counted) or 0.0
    response = await admin.post("/v1/feedback", json=answer(case, token))
    assert response.status_code == 201, response.text
    # Stored, so counted as any item is (it was left out of closeloop_feedback_stored_total).
    assert REGISTRY.get_sample_value("closeloop_feedback_stored_total", counted) == before + 1
    item = response.json()
    assert item["case"] == {
        "id": case["id"],
        "number": case["number"],
        "team": case["team"],
        "status": "resolved",
    }

    after = await read_case(admin, case["id"])
    assert after["status"] == "resolved"
    assert [(f["id"], f["kind"]) for f in after["feedback"]] == [
        (item["id"], "followup"),
        (case["feedback"][0]["id"], "opened"),
    ]
    events = await timeline(admin, case["id"])
    assert events[-1]["type"] == "followup_received"
    assert events[-1]["actor"] == "customer"
    assert events[-1]["data"] == {"feedback_id": item["id"], "sentiment": "positive", "score": 5}
    assert await cases_of(admin, "cus_42") == [case["id"]]


async def test_a_negative_followup_reopens_the_resolved_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved", "case.reopened", "case.opened")
    case, token = await resolved_with_token(admin, outbox)
    await outbox.new()
    response = await admin.post(
        "/v1/feedback",
        json=answer(case, token, metric="nps", score=2, comment="Nothing was fixed"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["case"]["id"] == case["id"]
    assert response.json()["case"]["status"] == "open"

    after = await read_case(admin, case["id"])
    assert after["status"] == "open"
    assert after["resolution"] is None
    events = await timeline(admin, case["id"])
    assert [e["type"] for e in events[-3:]] == ["followup_received", "status_changed", "reopened"]
    assert events[-1]["data"] == {"reason": "followup_negative"}
    [reopened] = await outbox.new()
    assert reopened.event_type == "case.reopened"
    assert reopened.data["reason"] == "followup_negative"
    assert await cases_of(admin, "cus_42") == [case["id"]]


async def test_a_negative_followup_reopens_a_closed_case(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    await acted(admin, case, "close")
    response = await admin.post("/v1/feedback", json=answer(case, token, score=1))
    assert response.status_code == 201, response.text
    assert (await read_case(admin, case["id"]))["status"] == "open"


async def test_a_followup_token_works_once(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.resolved")
    case, token = await resolved_with_token(admin, outbox)
    first = await admin.post("/v1/feedback", json=answer(case, token))
    assert first.status_code == 201, first.text
    again = await admin.post("/v1/feedback", json=answer(case, token, comment="Again"))
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "followup_used"
    after = await read_case(admin, case["id"])
    assert [f["kind"] for f in after["feedback"]] == ["followup", "opened"]


@pytest.mark.parametrize("wrong", ["token", "case"])
async def test_a_wrong_token_or_case_is_422_and_stores_nothing(
    admin: httpx.AsyncClient, outbox: Outbox, wrong: str
) -> None:
    await register(admin, "case.resolved", "feedback.received")
    case, token = await resolved_with_token(admin, outbox)
    await outbox.new()
    body = answer(case, token)
    if wrong == "token":
        body["in_reply_to"]["token"] = token[:-1] + ("A" if token[-1] != "A" else "B")
    else:
        body["in_reply_to"]["case_id"] = UNKNOWN_ID
    response = await admin.post("/v1/feedback", json=body)
    assert refused_fields(response) == ["in_reply_to.token"]

    # The item and its feedback.received message went with the failed request.
    assert await outbox.new() == []
    view = (await admin.get("/v1/customers/cus_42")).json()
    assert len(view["feedback"]) == 1
    # The right token still works.
    assert (await admin.post("/v1/feedback", json=answer(case, token))).status_code == 201


async def test_a_token_of_another_case_is_refused(admin: httpx.AsyncClient, outbox: Outbox) -> None:
    await register(admin, "case.resolved")
    first, first_token = await resolved_with_token(admin, outbox, customer={"external_id": "c1"})
    second, _ = await resolved_with_token(admin, outbox, customer={"external_id": "c2"})
    response = await admin.post("/v1/feedback", json=answer(second, first_token))
    assert refused_fields(response) == ["in_reply_to.token"]
    assert first["id"] != second["id"]


async def test_a_case_resolved_without_a_notice_takes_no_followup(
    admin: httpx.AsyncClient,
) -> None:
    await register(admin, "case.resolved")
    case = await open_case(admin)
    case = await acted(admin, case, "resolve", NO_NOTICE)
    response = await admin.post("/v1/feedback", json=answer(case, "any-token"))
    assert refused_fields(response) == ["in_reply_to.token"]


# -- messages of an endpoint --------------------------------------------------------------------


async def test_an_endpoints_messages_are_listed_newest_first_with_their_body(
    admin: httpx.AsyncClient, outbox: Outbox
) -> None:
    endpoint = await register(admin, "feedback.received")
    first = await send_feedback(admin, score=9, comment="Good", external_id="m-1")
    second = await send_feedback(admin, score=10, comment="Great", external_id="m-2")
    response = await admin.get(f"{ENDPOINTS}/{endpoint['id']}/messages")
    assert response.status_code == 200, response.text
    listed = response.json()["items"]
    assert [m["status"] for m in listed] == ["pending", "pending"]
    assert all(m["webhook_id"] == "msg_" + uuid.UUID(m["id"]).hex for m in listed)
    detail = (await admin.get(f"/v1/webhooks/messages/{listed[0]['id']}")).json()
    assert detail["payload"]["data"]["id"] == second["id"]
    assert detail["attempts"] == []
    older = (await admin.get(f"/v1/webhooks/messages/{listed[1]['id']}")).json()
    assert older["payload"]["data"]["id"] == first["id"]


# -- scopes -------------------------------------------------------------------------------------


def webhook_routes(endpoint_id: str, message_id: str) -> list[tuple[str, str, Any]]:
    endpoint = f"{ENDPOINTS}/{endpoint_id}"
    message = f"/v1/webhooks/messages/{message_id}"
    return [
        ("POST", ENDPOINTS, {"url": HOOK, "event_types": ["*"]}),
        ("GET", ENDPOINTS, None),
        ("GET", endpoint, None),
        ("PATCH", endpoint, {"enabled": False}),
        ("DELETE", endpoint, None),
        ("POST", f"{endpoint}/rotate-secret", None),
        ("POST", f"{endpoint}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", f"{endpoint}/messages", None),
        ("GET", message, None),
        ("POST", f"{message}/retry", None),
    ]


async def test_every_webhook_route_needs_the_admin_scope(
    admin: httpx.AsyncClient, app: FastAPI, database: BoundDatabase
) -> None:
    endpoint = await register(admin, "feedback.received")
    await send_feedback(admin, score=10, comment="Great")
    [message] = (await admin.get(f"{ENDPOINTS}/{endpoint['id']}/messages")).json()["items"]
    routes = webhook_routes(endpoint["id"], message["id"])
    for scopes in (["cases:write", "cases:read"], ["feedback:write", "feedback:read"]):
        key = auth(await make_api_key(database, *scopes))
        for method, url, body in routes:
            response = await admin.request(method, url, json=body, headers=key)
            assert response.status_code == 403, (scopes, method, url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        for method, url, body in routes:
            response = await anonymous.request(method, url, json=body)
            assert response.status_code == 401, (method, url, response.text)
    # Nothing changed: the endpoint is still there, enabled, with its one message.
    shown = (await admin.get(f"{ENDPOINTS}/{endpoint['id']}")).json()
    assert shown["enabled"] is True
    assert len((await admin.get(ENDPOINTS)).json()["items"]) == 1
