"""Closing the loop end to end: a resolved case reaches a real receiver, signed; the customer's
follow-up answer lands on the case."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import eventually, feedback_body
from tests.receiver import Receiver


async def _endpoint(client: httpx.AsyncClient, url: str, *types: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks/endpoints", json={"url": url, "event_types": list(types)}
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def test_a_resolved_case_reaches_the_receiver_signed(
    committed_client: httpx.AsyncClient, receiver: Receiver, dispatcher: None
) -> None:
    endpoint = await _endpoint(committed_client, receiver.url("/ok"), "case.resolved")
    body = feedback_body(
        source="ios-app",
        external_id="resp-77",
        customer={"external_id": "cus_9", "email": "ana@example.com", "locale": "pt-BR"},
    )
    item = (await committed_client.post("/v1/feedback", json=body)).json()
    case_id = item["case"]["id"]
    resolved = await committed_client.post(
        f"/v1/cases/{case_id}/resolve",
        json={"code": "refunded", "customer_message": "Devolvemos o seu dinheiro."},
        headers={"If-Match": '"1"'},
    )
    assert resolved.status_code == 200, resolved.text

    await receiver.wait_for(1, "/ok")
    delivery = receiver.at("/ok")[0]
    payload = delivery.verify(endpoint["secret"])
    assert payload["type"] == "case.resolved"
    data = payload["data"]
    assert data["case"]["id"] == case_id
    assert data["case"]["number"] == item["case"]["number"]
    assert data["resolution"] == {
        "code": "refunded",
        "customer_message": "Devolvemos o seu dinheiro.",
    }
    assert data["case"]["customer"]["email"] == "ana@example.com"
    assert data["case"]["customer"]["locale"] == "pt-BR"
    assert data["case"]["feedback"] == [
        {"id": item["id"], "source": "ios-app", "external_id": "resp-77"}
    ]
    token = data["followup"]["token"]
    assert data["followup"]["url"] == f"https://feedback.example.com/f/{token}"

    # The customer answers the follow-up: linked to the case, no new case; the token is spent.
    answer = feedback_body(
        source="ios-app",
        metric="csat",
        score=5,
        comment="Obrigado!",
        in_reply_to={"case_id": case_id, "token": token},
    )
    replied = await committed_client.post("/v1/feedback", json=answer)
    assert replied.status_code == 201, replied.text
    assert replied.json()["case"]["id"] == case_id
    case = (await committed_client.get(f"/v1/cases/{case_id}")).json()
    assert case["status"] == "resolved"
    assert [f["kind"] for f in case["feedback"]] == ["followup", "opened"]
    again = await committed_client.post(
        "/v1/feedback", json={**answer, "external_id": "another", "comment": "again"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "followup_used"

    # The customer view lists the notification and what became of it.
    async def delivered() -> list[Any]:
        view = (await committed_client.get("/v1/customers/cus_9")).json()
        outcomes = [(n["case_id"], n["outcome"]) for n in view["notifications"]]
        return outcomes if outcomes == [(case_id, "delivered")] else []

    assert await eventually(delivered)


async def test_a_negative_answer_reopens_and_the_link_then_says_it_was_used(
    committed_client: httpx.AsyncClient, receiver: Receiver, dispatcher: None
) -> None:
    endpoint = await _endpoint(committed_client, receiver.url("/ok"), "*")
    item = (await committed_client.post("/v1/feedback", json=feedback_body())).json()
    case_id = item["case"]["id"]
    await committed_client.post(
        f"/v1/cases/{case_id}/resolve",
        json={"code": "replaced", "customer_message": "A new one is on its way."},
        headers={"If-Match": '"1"'},
    )
    await receiver.wait_for(1, "/ok")

    def resolved() -> Any:
        for delivery in receiver.at("/ok"):
            payload = delivery.verify(endpoint["secret"])
            if payload["type"] == "case.resolved":
                return payload
        return None

    async def arrived() -> Any:
        return resolved()

    token = (await eventually(arrived))["data"]["followup"]["token"]
    # Sent from the link, without saying who: it is the case's customer all the same.
    answer = feedback_body(
        external_id="followup-1",
        score=2,
        comment="Still broken",
        customer=None,
        in_reply_to={"case_id": case_id, "token": token},
    )
    replied = await committed_client.post("/v1/feedback", json=answer)
    assert replied.status_code == 201
    assert replied.json()["customer"]["external_id"] == "cus_42"
    history = (await committed_client.get("/v1/customers/cus_42")).json()["feedback"]
    assert (history[0]["id"], history[0]["kind"]) == (replied.json()["id"], "followup")
    case = (await committed_client.get(f"/v1/cases/{case_id}")).json()
    assert case["status"] == "open"
    events = (await committed_client.get(f"/v1/cases/{case_id}/events")).json()["items"]
    reopened = [e for e in events if e["type"] == "reopened"]
    assert [(e["actor"], e["data"]["reason"]) for e in reopened] == [
        ("customer", "followup_negative")
    ]
    # The same answer again is a replay; a new one with the spent link is refused.
    assert (await committed_client.post("/v1/feedback", json=answer)).status_code == 200
    again = await committed_client.post(
        "/v1/feedback", json={**answer, "external_id": "followup-2"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "followup_used"

    # The reopening reached the receiver too.
    async def reopened_sent() -> bool:
        return any(
            d.verify(endpoint["secret"])["type"] == "case.reopened" for d in receiver.at("/ok")
        )

    assert await eventually(reopened_sent)
