"""Typeform: `Typeform-Signature`, its NPS and rating fields, partial then finished."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.db import BoundDatabase
from tests.builders import auth, make_api_key
from tests.connectors.deliveries import (
    TYPEFORM_SECRET,
    create_connector,
    raw,
    typeform_headers,
    typeform_response,
)

URL = "/v1/connectors/typeform/checkout-survey"


async def deliver(
    client: httpx.AsyncClient, document: dict[str, Any], status: int = 200, **headers: str
) -> dict[str, Any]:
    body = raw(document)
    response = await client.post(URL, content=body, headers={**typeform_headers(body), **headers})
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def stored(admin: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await admin.get("/v1/feedback", params={"source": "checkout-survey"})
    ).json()["items"]
    return items


async def test_a_response_becomes_feedback_with_its_case(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    answer = await deliver(admin, typeform_response("tok-1"))
    assert answer["status"] == "created"
    item = answer["feedback"]
    assert (item["external_id"], item["channel"]) == ("typeform:tok-1", "web")
    assert (item["metric"], item["score"], item["category"]) == ("nps", 3, "detractor")
    assert item["comment"] == "The app crashes at checkout"
    assert item["customer"]["email"] == "ana@example.com"
    assert item["customer"]["external_id"] == "cus_42"  # from the hidden field
    assert item["submitted_at"] == "2026-12-01T10:15:00Z"
    assert item["case"]["team"] == "support"
    assert item["case"]["status"] == "open"


async def test_a_wrong_or_missing_signature_is_401_and_stores_nothing(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    document = typeform_response("tok-1")
    body = raw(document)
    forged = typeform_headers(body, secret="not-the-secret")
    response = await admin.post(URL, content=body, headers=forged)
    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    unsigned = await admin.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    # Signed over other bytes than those sent: the body was changed on the way.
    tampered = await admin.post(
        URL, content=body.replace(b'"number": 3', b'"number": 9'), headers=typeform_headers(body)
    )
    assert tampered.status_code == 401
    assert await stored(admin) == []


async def test_an_api_key_is_no_signature(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, database: BoundDatabase
) -> None:
    """A stranger holding a publishable key (or any key) cannot post as the tool."""
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    stranger = await make_api_key(database, "feedback:write", publishable=True)
    body = raw(typeform_response("tok-1"))
    response = await client.post(
        URL, content=body, headers={"Content-Type": "application/json", **auth(stranger)}
    )
    assert response.status_code == 401


async def test_a_duplicate_delivery_is_dropped_and_a_resend_replays(
    admin: httpx.AsyncClient,
) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    first = await deliver(admin, typeform_response("tok-1"))
    assert (await deliver(admin, typeform_response("tok-1")))["status"] == "duplicate"
    resent = await deliver(admin, typeform_response("tok-1", event_id="another-event"))
    assert resent["status"] == "replayed"
    assert resent["feedback"]["id"] == first["feedback"]["id"]
    assert len(await stored(admin)) == 1


async def test_a_partial_response_opens_no_case_until_finished(
    admin: httpx.AsyncClient,
) -> None:
    connector = await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    partial = await deliver(admin, typeform_response("tok-1", comment=None, partial=True))
    assert partial["status"] == "partial"
    assert partial["feedback"] is None
    assert await stored(admin) == []
    kept = (await admin.get(f"/v1/connectors/{connector['id']}/responses")).json()
    assert [(r["response_id"], r["state"], r["feedback_id"]) for r in kept] == [
        ("tok-1", "partial", None)
    ]
    finished = await deliver(admin, typeform_response("tok-1"))
    assert finished["status"] == "created"
    assert finished["feedback"]["case"] is not None
    kept = (await admin.get(f"/v1/connectors/{connector['id']}/responses")).json()
    assert [(r["state"], r["feedback_id"]) for r in kept] == [
        ("complete", finished["feedback"]["id"])
    ]
    # A partial event arriving late changes nothing.
    late = await deliver(admin, typeform_response("tok-1", partial=True, event_id="late"))
    assert late["status"] == "ignored"


async def test_zero_and_string_scores_are_scores(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    zero = await deliver(admin, typeform_response("tok-0", nps=0, comment=None))
    assert (zero["feedback"]["score"], zero["feedback"]["category"]) == (0, "detractor")
    text = await deliver(admin, typeform_response("tok-9", nps="9", comment=None))
    assert (text["feedback"]["score"], text["feedback"]["category"]) == (9, "promoter")


async def test_missing_email_is_a_customer_known_by_id(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    answer = await deliver(admin, typeform_response("tok-1", email=None))
    customer = answer["feedback"]["customer"]
    assert (customer["external_id"], customer["email"]) == ("cus_42", None)


async def test_a_rating_is_read_on_the_forms_own_scale(admin: httpx.AsyncClient) -> None:
    """The form's rating field has 10 steps: 10 of 10 is a 5-star rating, the raw kept."""
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    answer = await deliver(admin, typeform_response("tok-1", nps=None, comment=None, rating=10))
    item = answer["feedback"]
    assert (item["metric"], item["score"]) == ("star", 5)
    assert item["attributes"] == {"score_raw": 10, "score_scale": "1-10"}


async def test_a_score_outside_the_scale_is_a_422_naming_the_field(
    admin: httpx.AsyncClient,
) -> None:
    """The NPS question mapped as a CSAT without a scale: 9 is outside 1-5."""
    await create_connector(
        admin,
        "typeform",
        "checkout-survey",
        secret=TYPEFORM_SECRET,
        mapping={"metric": "csat", "field": "nps_recommend"},
    )
    body = raw(typeform_response("tok-1", nps=9))
    response = await admin.post(URL, content=body, headers=typeform_headers(body))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["type"]) == ("nps_recommend", "score_out_of_range")
    assert "set `scale`" in error["message"]
    assert await stored(admin) == []


async def test_a_score_that_is_no_number_is_a_422_naming_the_field(
    admin: httpx.AsyncClient,
) -> None:
    """ "²" is a digit to str.isdigit, and was once a 500 on its way to int()."""
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    for text in ("² bad", "²", "nine"):
        body = raw(typeform_response("tok-1", nps=text))
        response = await admin.post(URL, content=body, headers=typeform_headers(body))
        assert response.status_code == 422, (text, response.text)
        [error] = response.json()["errors"]
        assert (error["field"], error["type"]) == ("nps_recommend", "score_not_a_number")
    assert await stored(admin) == []


async def test_a_payload_of_the_wrong_shape_names_the_field(admin: httpx.AsyncClient) -> None:
    await create_connector(admin, "typeform", "checkout-survey", secret=TYPEFORM_SECRET)
    document = typeform_response("tok-1")
    del document["form_response"]["token"]
    response = await admin.post(URL, content=raw(document), headers=typeform_headers(raw(document)))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "form_response.token"
    not_json = b"{not json"
    response = await admin.post(URL, content=not_json, headers=typeform_headers(not_json))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_payload"


async def test_an_unknown_tool_or_a_source_without_connector_is_404(
    admin: httpx.AsyncClient,
) -> None:
    body = raw(typeform_response("tok-1"))
    response = await admin.post(URL, content=body, headers=typeform_headers(body))
    assert response.status_code == 404
    assert response.json()["code"] == "connector_not_found"
    response = await admin.post(
        "/v1/connectors/surveygizmo/x", content=body, headers=typeform_headers(body)
    )
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_tool"
