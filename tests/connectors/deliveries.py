"""Deliveries as each tool sends them: bodies written from the tools' public webhook
documentation, signed with test secrets the way each tool signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

TYPEFORM_SECRET = "typeform-test-secret"
TALLY_SECRET = "tally-test-secret"
ZENDESK_SECRET = "zendesk-test-signing-secret"
DELIGHTED_TOKEN = "delighted-test-token"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-test-secret-0123").decode()


def _b64_hmac(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def typeform_headers(body: bytes, secret: str = TYPEFORM_SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Typeform-Signature": "sha256=" + _b64_hmac(secret, body),
    }


def tally_headers(body: bytes, secret: str = TALLY_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "Tally-Signature": _b64_hmac(secret, body)}


def zendesk_headers(
    body: bytes, secret: str = ZENDESK_SECRET, *, at: datetime | None = None, invocation: str = "1"
) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Id": "01GZ3X8T8N7JQY2Q3B4C5D6E7F",
        "X-Zendesk-Webhook-Invocation-Id": invocation,
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "X-Zendesk-Webhook-Signature": _b64_hmac(secret, timestamp.encode() + body),
    }


def standard_headers(body: bytes, message_id: str, secret: str = STANDARD_SECRET) -> dict[str, str]:
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def typeform_response(
    token: str,
    *,
    nps: Any = 3,
    comment: str | None = "The app crashes at checkout",
    email: str | None = "ana@example.com",
    event_id: str | None = None,
    partial: bool = False,
    submitted_at: str = "2026-12-01T10:15:00Z",
    rating: Any = None,
) -> dict[str, Any]:
    """A `form_response` as Typeform's example payload shapes it: the form's definition, the
    answers with their fields, hidden fields."""
    fields: list[dict[str, Any]] = [
        {"id": "nPsq1", "ref": "nps_recommend", "type": "nps", "title": "How likely...?"},
        {"id": "cMmt2", "ref": "why", "type": "long_text", "title": "Why?"},
        {"id": "eMl3", "ref": "contact", "type": "email", "title": "Your e-mail"},
        {
            "id": "rTg4",
            "ref": "stars",
            "type": "rating",
            "title": "Rate us",
            "properties": {"steps": 10},
        },
    ]
    answers: list[dict[str, Any]] = []
    if nps is not None:
        answers.append({"type": "number", "number": nps, "field": {**_ref(fields[0])}})
    if comment is not None:
        answers.append({"type": "text", "text": comment, "field": {**_ref(fields[1])}})
    if email is not None:
        answers.append({"type": "email", "email": email, "field": {**_ref(fields[2])}})
    if rating is not None:
        answers.append({"type": "number", "number": rating, "field": {**_ref(fields[3])}})
    return {
        "event_id": event_id or f"evt-{token}-{partial}",
        "event_type": "form_response_partial" if partial else "form_response",
        "form_response": {
            "form_id": "lT4Z3j",
            "token": token,
            "landed_at": "2026-12-01T10:14:00Z",
            "submitted_at": submitted_at,
            "hidden": {"customer_id": "cus_42", "plan": "pro"},
            "definition": {"id": "lT4Z3j", "title": "Checkout survey", "fields": fields},
            "answers": answers,
        },
    }


def _ref(spec: dict[str, Any]) -> dict[str, Any]:
    return {"id": spec["id"], "type": spec["type"], "ref": spec["ref"]}


def delighted_event(
    response_id: str,
    *,
    kind: str = "survey_response.created",
    survey_type: str = "nps",
    score: Any = 2,
    comment: str | None = None,
    email: str | None = "charlie@example.com",
    event_id: str | None = None,
) -> dict[str, Any]:
    """As Delighted's webhook documentation shows a survey_response event."""
    person: dict[str, Any] = {"id": "5975", "name": "Charlie Gravis", "created_at": 1764583200}
    if email is not None:
        person["email"] = email
    return {
        "event_type": kind,
        "event_id": event_id or f"{kind}-{response_id}-{score}-{comment}",
        "event_data": {
            "id": response_id,
            "person": person,
            "survey_type": survey_type,
            "score": score,
            "comment": comment,
            "permalink": "https://delighted.example/r/abc",
            "created_at": 1764583260,
            "updated_at": 1764583860,
            "person_properties": {"plan": "enterprise", "customer_id": "cus_77"},
            "notes": [],
            "tags": [],
            "additional_answers": [],
        },
    }


def zendesk_rating(
    ticket_id: Any, rating: str = "Bad, I'm unsatisfied", comment: str | None = "Nobody called"
) -> dict[str, Any]:
    """The JSON body docs/connectors.md has you paste into the Zendesk trigger, filled in as
    Zendesk fills its placeholders."""
    return {
        "ticket_id": ticket_id,
        "rating": rating,
        "comment": comment or "",
        "requester_external_id": "cus_9",
        "requester_email": "dana@example.com",
        "requester_name": "Dana",
        "updated_at": "2026-12-01T09:00:00",
        "group": "Support EU",
    }


def tally_response(
    response_id: str,
    *,
    rating: Any = 2,
    choice: list[str] | None = None,
    comment: str | None = "Too slow",
    email: str | None = "eve@example.com",
) -> dict[str, Any]:
    """A FORM_RESPONSE as Tally's webhook documentation shows it."""
    fields: list[dict[str, Any]] = [
        {"key": "question_rating", "label": "Rate us", "type": "RATING", "value": rating},
        {"key": "question_why", "label": "Why?", "type": "TEXTAREA", "value": comment},
        {"key": "question_mail", "label": "E-mail", "type": "INPUT_EMAIL", "value": email},
    ]
    if choice is not None:
        fields.append(
            {
                "key": "question_effort",
                "label": "How easy was it?",
                "type": "MULTIPLE_CHOICE",
                "value": choice,
                "options": [
                    {"id": "opt-hard", "text": "Very hard"},
                    {"id": "opt-ok", "text": "Neither"},
                    {"id": "opt-easy", "text": "Very easy"},
                ],
            }
        )
    return {
        "eventId": f"evt-{response_id}",
        "eventType": "FORM_RESPONSE",
        "createdAt": "2026-12-01T08:00:00.000Z",
        "data": {
            "responseId": response_id,
            "submissionId": response_id,
            "respondentId": "resp-1",
            "formId": "mVQ0aw",
            "formName": "Support survey",
            "createdAt": "2026-12-01T08:00:00.000Z",
            "fields": fields,
        },
    }


async def create_connector(
    admin: httpx.AsyncClient, tool: str, source: str, **body: Any
) -> dict[str, Any]:
    response = await admin.post("/v1/connectors", json={"tool": tool, "source": source, **body})
    assert response.status_code == 201, response.text
    connector: dict[str, Any] = response.json()
    return connector
