"""SurveyMonkey and Qualtrics (ids only: pending), Jotform (multipart with `rawRequest`),
Formbricks (Standard Webhooks, partial then finished) and Google Forms (token, Apps Script)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.connectors.deliveries import STANDARD_SECRET, create_connector, raw, standard_headers

SM_SECRET = "sm-api-key&sm-api-secret"
TOKEN = "a-token-for-tools-that-sign-nothing"


def surveymonkey_headers(body: bytes, secret: str = SM_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return {
        "Content-Type": "application/json",
        "Sm-Apikey": "sm-api-key",
        "Sm-Signature": base64.b64encode(digest).decode(),
    }


def surveymonkey_event(event_type: str = "response_completed") -> dict[str, Any]:
    """As SurveyMonkey's webhook callbacks are documented: ids, no answers."""
    return {
        "name": "NPS webhook",
        "filter_type": "survey",
        "filter_id": "123456789",
        "event_type": event_type,
        "event_id": f"evt-{event_type}",
        "object_type": "response",
        "object_id": "987654321",
        "event_datetime": "2026-12-01T10:30:00.000000+00:00",
        "resources": {
            "survey_id": "123456789",
            "collector_id": "111222333",
            "respondent_id": "444555666",
            "recipient_id": "777888999",
        },
    }


async def test_surveymonkey_ids_only_is_pending_with_a_note(admin: httpx.AsyncClient) -> None:
    connector = await create_connector(admin, "surveymonkey", "sm-nps", secret=SM_SECRET)
    body = raw(surveymonkey_event())
    url = "/v1/connectors/surveymonkey/sm-nps"
    response = await admin.post(url, content=body, headers=surveymonkey_headers(body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["response_id"]) == ("pending", "987654321")
    assert "API" in answer["note"]
    pending = (
        await admin.get(f"/v1/connectors/{connector['id']}/responses", params={"state": "pending"})
    ).json()
    assert [r["response_id"] for r in pending] == ["987654321"]
    assert (await admin.get("/v1/feedback", params={"source": "sm-nps"})).json()["items"] == []
    forged = surveymonkey_headers(body, secret="sm-api-key&another")
    assert (await admin.post(url, content=body, headers=forged)).status_code == 401


async def test_a_tools_url_answers_head_as_surveymonkey_checks_it(
    client: httpx.AsyncClient,
) -> None:
    """SurveyMonkey makes a webhook only if its URL answers HEAD with 200. Any tool's URL does,
    without a key and connector or not (it says nothing about which sources have one)."""
    for url in ("/v1/connectors/surveymonkey/sm-nps", "/v1/connectors/typeform/nothing-here"):
        response = await client.head(url)
        assert response.status_code == 200, url
        assert response.content == b""
    assert (await client.head("/v1/connectors/surveygizmo/sm-nps")).status_code == 404


async def test_qualtrics_event_subscription_form_is_pending(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "qualtrics", "xm", secret=TOKEN)
    form = urlencode(
        {
            "Topic": "surveyengine.completedResponse.SV_abc",
            "Status": "Complete",
            "SurveyID": "SV_abc",
            "ResponseID": "R_1",
            "CompletedDate": "2026-12-01 10:00:00",
            "BrandID": "acme",
        }
    ).encode()
    response = await admin.post(
        f"/v1/connectors/qualtrics/xm?token={TOKEN}",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"


async def test_qualtrics_workflow_json_is_mapped(admin: httpx.AsyncClient) -> None:
    await create_connector(
        admin,
        "qualtrics",
        "xm",
        secret=TOKEN,
        mapping={"metric": "nps", "field": "QID1", "comment": "QID2_TEXT"},
    )
    body = raw(
        {
            "ResponseID": "R_2",
            "QID1": "0",
            "QID2_TEXT": "Never again",
            "RecipientEmail": "kim@example.com",
            "EndDate": "2026-12-01T10:00:00Z",
        }
    )
    response = await admin.post(
        "/v1/connectors/qualtrics/xm",
        content=body,
        headers={"Content-Type": "application/json", "X-Closeloop-Token": TOKEN},
    )
    assert response.status_code == 200, response.text
    item = response.json()["feedback"]
    assert (item["metric"], item["score"], item["category"]) == ("nps", 0, "detractor")
    assert item["customer"]["email"] == "kim@example.com"


def jotform_multipart(raw_request: dict[str, Any], submission: str) -> tuple[bytes, str]:
    """A multipart/form-data body as Jotform posts it: `rawRequest` holds the answers as a JSON
    string."""
    boundary = "----jotformBoundary7MA4YWxk"
    parts = {
        "formID": "231234567890",
        "submissionID": submission,
        "formTitle": "Store survey",
        "pretty": "How satisfied:2, Email:lee@example.com",
        "rawRequest": json.dumps(raw_request),
    }
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in parts.items()
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_jotform_multipart_raw_request_with_string_scores(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(
        admin,
        "jotform",
        "store",
        secret=TOKEN,
        mapping={
            "metric": "csat",
            "field": "q3_howSatisfied",
            "comment": "q4_tellUs",
            "attributes": ["q6_storeId"],
        },
    )
    body, content_type = jotform_multipart(
        {
            "q3_howSatisfied": "2",
            "q4_tellUs": "Queue was endless",
            "q5_email": "lee@example.com",
            "q6_storeId": "ST-12",
        },
        "5812345678",
    )
    response = await admin.post(
        f"/v1/connectors/jotform/store?token={TOKEN}",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    item = response.json()["feedback"]
    assert item["external_id"] == "jotform:5812345678"
    assert (item["metric"], item["score"], item["comment"]) == ("csat", 2, "Queue was endless")
    assert item["customer"]["email"] == "lee@example.com"
    assert item["attributes"] == {"q6_storeId": "ST-12"}
    assert item["case"] is not None
    broken, content_type = jotform_multipart({}, "1")
    broken = broken.replace(b"{}", b"{not json")
    response = await admin.post(
        f"/v1/connectors/jotform/store?token={TOKEN}",
        content=broken,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "rawRequest"


def formbricks_event(event: str, finished: bool, answers: dict[str, Any]) -> bytes:
    return raw(
        {
            "webhookId": "wh_1",
            "event": event,
            "data": {
                "id": "resp_fb_1",
                "createdAt": "2026-12-01T10:00:00.000Z",
                "updatedAt": "2026-12-01T10:01:00.000Z",
                "surveyId": "srv_1",
                "finished": finished,
                "data": answers,
                "meta": {"url": "https://app.example.com/settings"},
                "contactAttributes": {"email": "max@example.com", "userId": "u-7"},
            },
        }
    )


async def test_formbricks_partial_then_finished(admin: httpx.AsyncClient) -> None:
    await create_connector(
        admin,
        "formbricks",
        "in-app",
        secret=STANDARD_SECRET,
        mapping={"metric": "nps", "field": "q_nps", "comment": "q_why", "channel": "app"},
    )
    url = "/v1/connectors/formbricks/in-app"
    first = formbricks_event("responseCreated", False, {"q_nps": 4})
    response = await admin.post(url, content=first, headers=standard_headers(first, "fb_1"))
    assert response.json()["status"] == "partial"
    done = formbricks_event("responseFinished", True, {"q_nps": 4, "q_why": "Slow sync"})
    response = await admin.post(url, content=done, headers=standard_headers(done, "fb_2"))
    item = response.json()["feedback"]
    assert (item["channel"], item["score"], item["comment"]) == ("app", 4, "Slow sync")
    assert item["customer"]["external_id"] == "u-7"
    assert item["case"] is not None
    unsigned = await admin.post(url, content=done, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401


async def test_google_forms_apps_script_post(admin: httpx.AsyncClient) -> None:
    await create_connector(
        admin,
        "google_forms",
        "event-survey",
        secret=TOKEN,
        mapping={"metric": "star", "field": "How was the event?", "comment": "Anything else?"},
    )
    body = raw(
        {
            "responseId": "ACYDBNj",
            "timestamp": "2026-12-01T18:00:00.000Z",
            "respondentEmail": "",
            "answers": {"How was the event?": "5", "Anything else?": "Loved it"},
        }
    )
    response = await admin.post(
        "/v1/connectors/google_forms/event-survey",
        content=body,
        headers={"Content-Type": "application/json", "X-Closeloop-Token": TOKEN},
    )
    assert response.status_code == 200, response.text
    item = response.json()["feedback"]
    assert (item["metric"], item["score"], item["comment"]) == ("star", 5, "Loved it")
    assert item["customer"]["email"] is None  # left empty: an anonymous answer
